// Netlink sockets (route, audit, uevent, generic netlink ...): protocol, type, the port id they
// are bound to, multicast groups, the peer they are connected to and their SOL_NETLINK options,
// as CRIU's netlink_sk_entry (plus two cryo fields). Messages waiting in one cannot be put back
// (they come from the kernel), so a socket with a reply or notification queued is refused; an
// empty one is made again exactly: the same port id (it is usually the owner's PID, which the
// restore keeps) and groups, so requests and notifications keep flowing to the program.
import type { MessageInitShape } from '@bufbuild/protobuf';
import { netlink_sk_entrySchema } from '../../image/gen/sk-netlink_pb.js';
import { hasField } from '../../image/presence.js';
import {
  AF, SOCK, SOL, SO, MSG, E, socket, bind, connect, sysTry, getsockname, getpeername, getsockoptInt, getsockoptRaw, setsockoptInt,
} from '../../sys/index.js';
import { UserError } from '../../util/errors.js';
import type { BlockerCause } from '../../util/blocker.js';
import { dumpSkOpts, restoreSkOpts, finishSocket, type SkOpts } from './sk-opts.js';
import type { FownData } from './fown.js';

export type NetlinkSkData = MessageInitShape<typeof netlink_sk_entrySchema> & {
  id: number; ino: number; protocol: number; state: number; flags: number; portid: number; groups: number[];
  dstPortid: number; dstGroup: number; fown: FownData; opts: SkOpts;
};

const SOL_NETLINK = 270;
const NETLINK_ADD_MEMBERSHIP = 1;
const NETLINK_LIST_MEMBERSHIPS = 9;
/** Boolean SOL_NETLINK options a program sets and getsockopt reads back. */
const NL_OPTIONS = [3, 4, 5, 8, 10, 11, 12];
const CONNECTED = 1;

const PROTOCOL_NAME: Record<number, string> = {
  0: 'route', 4: 'sock_diag', 6: 'xfrm', 9: 'audit', 10: 'fib_lookup', 11: 'connector', 12: 'netfilter',
  15: 'kobject_uevent', 16: 'generic', 18: 'scsitransport', 20: 'rdma', 21: 'crypto',
};

/** What the kernel tells about one netlink socket (our copy `fd` of it). */
export interface NetlinkInfo {
  protocol: number;
  type: number;
  portid: number;
  /** The multicast groups joined, as 32-bit words of a bitmap (group N is bit N-1). */
  groups: number[];
  dst: { portid: number; group: number } | null;
  /** Whether a message waits in its receive queue. */
  queued: boolean;
}

function decodeNl(sa: Buffer): { portid: number; groups: number } {
  return { portid: sa.readUInt32LE(4), groups: sa.readUInt32LE(8) };
}

function encodeNl(portid: number, groups: number): Buffer {
  const sa = Buffer.alloc(12);
  sa.writeUInt16LE(AF.NETLINK, 0);
  sa.writeUInt32LE(portid >>> 0, 4);
  sa.writeUInt32LE(groups >>> 0, 8);
  return sa;
}

/** The groups bitmap (NETLINK_LIST_MEMBERSHIPS), trailing empty words dropped. */
function memberships(fd: number): number[] {
  const raw = getsockoptRaw(fd, SOL_NETLINK, NETLINK_LIST_MEMBERSHIPS, 128);
  const words = Array.from({ length: raw.length / 4 }, (_, i) => raw.readUInt32LE(i * 4));
  while (words.length && words[words.length - 1] === 0) words.pop();
  return words;
}

export function inspectNetlink(fd: number): NetlinkInfo {
  const peer = getpeername(fd);
  const dst = peer ? decodeNl(peer) : null;
  const probe = Buffer.alloc(1);
  const r = sysTry('recvfrom', [fd, probe, 1, MSG.PEEK | MSG.DONTWAIT, 0, 0]);
  return {
    protocol: getsockoptInt(fd, SOL.SOCKET, SO.PROTOCOL),
    type: getsockoptInt(fd, SOL.SOCKET, SO.TYPE),
    portid: decodeNl(getsockname(fd)).portid,
    groups: memberships(fd),
    dst: dst && (dst.portid || dst.groups) ? { portid: dst.portid, group: dst.groups } : null,
    queued: !(r.ret < 0 && r.errno === E.EAGAIN),
  };
}

export function describeNetlink(n: NetlinkInfo): string {
  return `netlink socket (${PROTOCOL_NAME[n.protocol] ?? `protocol ${n.protocol}`}${n.portid ? `, port ${n.portid}` : ''})`;
}

export function netlinkBlocker(n: NetlinkInfo): BlockerCause | null {
  if (n.type !== SOCK.RAW && n.type !== SOCK.DGRAM) return { kind: 'socket', reason: `${describeNetlink(n)} of type ${n.type} — not supported` };
  if (n.queued) {
    return {
      kind: 'socket',
      reason: `${describeNetlink(n)} has a message waiting to be read (a reply or notification from the kernel, which cannot be queued again) — not supported`,
      hint: 'dump again once the program has read it',
    };
  }
  return null;
}

export function dumpNetlinkSk(fd: number, n: NetlinkInfo, id: number, ino: number, flags: number, fown: FownData): NetlinkSkData {
  let options = 0;
  for (const o of NL_OPTIONS) {
    try {
      if (getsockoptInt(fd, SOL_NETLINK, o)) options |= 1 << o;
    } catch {
      /* an option this kernel does not know is off */
    }
  }
  return {
    id, ino, protocol: n.protocol, state: n.dst ? CONNECTED : 0, flags, portid: n.portid, groups: n.groups,
    dstPortid: n.dst?.portid ?? 0, dstGroup: n.dst?.group ?? 0, fown, opts: dumpSkOpts(fd),
    ...(options ? { cryoNlOptions: options } : {}),
    ...(n.type !== SOCK.RAW ? { cryoType: n.type } : {}),
  };
}

/** A new netlink socket as the entry describes it, in the restorer. */
export function restoreNetlinkSk(e: NetlinkSkData): number {
  const type = hasField(netlink_sk_entrySchema, e, 'cryoType') ? e.cryoType! : SOCK.RAW;
  const what = `netlink socket (${PROTOCOL_NAME[e.protocol] ?? `protocol ${e.protocol}`}, port ${e.portid})`;
  const fd = socket(AF.NETLINK, type, e.protocol);
  return finishSocket(fd, e.flags, () => {
    restoreSkOpts(fd, e.opts, what);
    const groups = e.groups ?? [];
    if (e.portid || groups[0]) {
      try {
        bind(fd, encodeNl(e.portid, groups[0] ?? 0), what);
      } catch (err) {
        throw new UserError(`cannot restore ${what}: ${(err as Error).message}`);
      }
    }
    // Groups past the first 32 cannot be given to bind().
    groups.forEach((word, i) => {
      if (i === 0) return;
      for (let bit = 0; bit < 32; bit++) if ((word >>> bit) & 1) setsockoptInt(fd, SOL_NETLINK, NETLINK_ADD_MEMBERSHIP, i * 32 + bit + 1, `${what}: group ${i * 32 + bit + 1}`);
    });
    const options = hasField(netlink_sk_entrySchema, e, 'cryoNlOptions') ? e.cryoNlOptions! : 0;
    for (const o of NL_OPTIONS) if (options & (1 << o)) setsockoptInt(fd, SOL_NETLINK, o, 1, `${what}: option ${o}`);
    if (e.state === CONNECTED) connect(fd, encodeNl(e.dstPortid, e.dstGroup), what);
  });
}
