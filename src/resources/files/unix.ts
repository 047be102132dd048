// Unix sockets: stream, datagram and seqpacket; socketpairs, bound (path or abstract name),
// listening, connected within the tree or (with --ext-unix-sk) to a named socket outside it.
// The kernel's view comes from sock_diag (peer, name, queue lengths, shutdown); options and
// queued messages from our own copy of the task's socket (the dump side; unix-restore.ts makes
// them again, unix-kind.ts is the fd kind).
import { statSync } from 'node:fs';
import type { MessageInitShape } from '@bufbuild/protobuf';
import type { unix_sk_entrySchema } from '../../image/gen/sk-unix_pb.js';
import { SOCK, TCP_STATE, peerCredentials, type UnixDiag, type QueuedMessage, type Ucred } from '../../sys/index.js';
import type { BlockerCause } from '../../util/blocker.js';
import { dumpSkOpts, type SkOpts } from './sk-opts.js';
import type { FownData } from './fown.js';
import { QueueWalks } from './queue-walks.js';

export type UnixSkData = MessageInitShape<typeof unix_sk_entrySchema> & {
  id: number; ino: number; type: number; state: number; flags: number; uflags: number; backlog: number;
  peer: number; name: Uint8Array; opts: SkOpts; fown: FownData; shutdown?: number;
  filePerms?: { mode: number; uid: number; gid: number }; deleted?: boolean;
};

/** A message to put back in a socket's queue, with the file ids it carries (SCM_RIGHTS). */
export interface QueuedData {
  data: Buffer;
  rights: number[];
  /** Its sender's credentials, for a receiver with SO_PASSCRED (unix-creds.ts). */
  creds?: Ucred;
  /** A datagram's sender's name (unix-senders.ts); absent for an unbound sender. */
  sender?: Buffer;
}

/** uflags: the socket is the peer of one of ours, outside the tree (--ext-unix-sk). */
export const USK_EXTERN = 1;
export const TYPE_NAME: Record<number, string> = { [SOCK.STREAM]: 'stream', [SOCK.DGRAM]: 'dgram', [SOCK.SEQPACKET]: 'seqpacket' };
/** Largest message we can read back from a queue. */
const MAX_MESSAGE = 8 << 20;

/** A printable form of a bound name: a path, or `@name` for the abstract namespace. */
export function unixName(name: Uint8Array): string {
  const b = Buffer.from(name);
  if (!b.length) return '';
  if (b[0] === 0) return '@' + b.subarray(1).toString('latin1').replace(/\0/g, '@');
  return b.toString('utf8').replace(/\0+$/, '');
}

export function isPath(name: Uint8Array): boolean {
  return name.length > 0 && name[0] !== 0;
}

/** Bound to a path relative to the binder's cwd then: nothing says where it is. */
function isRelative(name: Uint8Array): boolean {
  return isPath(name) && !unixName(name).startsWith('/');
}

export function describeUnix(d: UnixDiag): string {
  const name = unixName(d.name);
  const type = TYPE_NAME[d.type] ?? `type ${d.type}`;
  if (d.state === TCP_STATE.LISTEN) return `unix ${type} socket listening on ${name}`;
  const parts = [`unix ${type} socket`];
  if (name) parts.push(`bound to ${name}`);
  if (d.peer) parts.push(`connected to socket ${d.peer}`);
  return parts.join(' ');
}

/**
 * The listening socket `ino` waits to be accepted by, if any. sock_diag lists, for a listener,
 * the clients of its pending connections (the accepting side has no inode yet), and shows such
 * a client as connected to no one.
 */
export function listenerOf(ino: number, all: Map<number, UnixDiag>): UnixDiag | undefined {
  for (const d of all.values()) if (d.state === TCP_STATE.LISTEN && d.icons.includes(ino)) return d;
  return undefined;
}

/**
 * Why this socket cannot be dumped (null if it can). `held`: socket inodes the tree holds;
 * `heldUnsure`: perhaps not all of those in flight (a look before the freeze, queue-walks.ts),
 * so a socket not among them is not taken to be outside the tree (the look under it decides).
 */
export function unixBlocker(d: UnixDiag, all: Map<number, UnixDiag>, held: Set<number>, extUnixSk: boolean, heldUnsure = false): BlockerCause | null {
  const refuse = (reason: string, hint?: string): BlockerCause => ({ kind: 'socket', reason: `${describeUnix(d)}: ${reason}`, ...(hint ? { hint } : {}) });
  if (isRelative(d.name)) return refuse(`bound to a relative path — not supported yet`);
  // Connections waiting to be accepted are made again by their clients: each client must be
  // ours, and must not have written anything yet (that would sit in the unaccepted end).
  for (const ino of d.state === TCP_STATE.LISTEN ? d.icons : []) {
    if (!held.has(ino) && !heldUnsure) return refuse(`a connection not accepted yet comes from outside the dumped tree — not supported`);
    const sent = all.get(ino)?.wqueue ?? 0;
    if (sent) return refuse(`a connection not accepted yet has ${sent} bytes queued — not supported yet`);
  }
  if (d.peer && !held.has(d.peer) && !heldUnsure) {
    const peer = all.get(d.peer);
    const peerName = peer ? unixName(peer.name) : '';
    if (!peerName) return refuse(`its peer is outside the dumped tree and has no name — cannot be reconnected`);
    if (isRelative(peer!.name)) {
      return refuse(`its peer ${peerName} is outside the dumped tree and bound to a relative path — cannot be reconnected`);
    }
    if (!extUnixSk) return refuse(`its peer ${peerName} is outside the dumped tree`, 'pass --ext-unix-sk to reconnect to it on restore');
  }
  return null;
}

/**
 * The image entry of one socket and its queued messages, from our copy `fd` of it. Fds in flight
 * in the messages are ours to dump and close.
 */
export function dumpUnixSk(
  fd: number, d: UnixDiag, all: Map<number, UnixDiag>, id: number, flags: number, fown: FownData, queues: QueueWalks,
): { entry: UnixSkData; queue: QueuedMessage[] } {
  const entry: UnixSkData = {
    id, ino: d.ino, type: d.type, state: d.state, flags, uflags: 0,
    backlog: d.state === TCP_STATE.LISTEN ? d.wqueue : 0,
    // A client whose connection waits in a listener's queue is recorded as the listener's peer:
    // restore connects it to the listener again.
    peer: d.peer || (listenerOf(d.ino, all)?.ino ?? 0), fown, opts: dumpSkOpts(fd), name: d.name,
    ...(d.shutdown ? { shutdown: d.shutdown } : {}),
  };
  const cred = peerCredentials(fd);
  if (cred) entry.cryoPeerCred = cred;
  if (isPath(d.name)) {
    const path = unixName(d.name);
    let st: ReturnType<typeof statSync> | null = null;
    try {
      st = statSync(path);
    } catch {
      /* removed since bind */
    }
    if (st && d.vfs && Number(st.ino) === d.vfs.ino) {
      entry.filePerms = { mode: Number(st.mode), uid: Number(st.uid), gid: Number(st.gid) };
    } else {
      entry.deleted = true;
    }
  }
  // A datagram's sender is the name its socket had: recvfrom() shows it, and a reply goes to it.
  const queue = QueueWalks.mayHold(d) ? queues.walk(d, fd, MAX_MESSAGE) : [];
  if (!queue) throw new Error(`${describeUnix(d)}: its queue was not walked (a scan before the freeze)`);
  return { entry, queue };
}

/** The entry for a peer outside the tree: only its name and type, to connect to again. */
export function externalPeer(d: UnixDiag, id: number, fown: FownData): UnixSkData {
  return {
    id, ino: d.ino, type: d.type, state: d.state, flags: 0, uflags: USK_EXTERN, backlog: 0, peer: 0, fown,
    opts: { soSndbuf: 0, soRcvbuf: 0, soSndTmoSec: 0n, soSndTmoUsec: 0n, soRcvTmoSec: 0n, soRcvTmoUsec: 0n },
    name: d.name,
  };
}
