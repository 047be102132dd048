// Socket options beyond CRIU's set (timestamps, IP_TOS/TTL, IP_RECVERR, IP_PKTINFO, multicast
// TTL/loop/interface, IPv6 hop limits and traffic class, TCP_USER_TIMEOUT, TCP_CONGESTION,
// TCP_DEFER_ACCEPT, TCP_FASTOPEN, UDP_SEGMENT/GRO, ...), saved in sk_opts_entry's cryo_opts.
// What a program sets is what differs from a fresh socket of the same family, type and protocol,
// so only that is recorded: a default the restoring kernel picks for itself stays its own.
// Restored on the new socket before it is bound (IP_FREEBIND and IP_TRANSPARENT must be).
import type { MessageInitShape } from '@bufbuild/protobuf';
import { cryo_sockopt_entrySchema } from '../../image/gen/sk-opts_pb.js';
import { hasField } from '../../image/presence.js';
import {
  AF, SOCK, SOL, SO, IPPROTO, socket, closeFd, getsockoptInt, getpeername, setsockoptRaw, sysTry,
  SOCKET_LEVEL_OPTS, IP_LEVEL_OPTS, IPV6_LEVEL_OPTS, TCP_LEVEL_OPTS, UDP_LEVEL_OPTS, type SockoptName,
} from '../../sys/index.js';

export type ProtoOpt = MessageInitShape<typeof cryo_sockopt_entrySchema> & { level: number; name: number };

interface SocketKind {
  domain: number;
  type: number;
  protocol: number;
}

/** Family, type and protocol of a socket. */
export function socketKind(fd: number): SocketKind {
  return { domain: getsockoptInt(fd, SOL.SOCKET, SO.DOMAIN), type: getsockoptInt(fd, SOL.SOCKET, SO.TYPE), protocol: getsockoptInt(fd, SOL.SOCKET, SO.PROTOCOL) };
}

/** The options that mean something for a socket of this kind. */
export function optionsFor(k: SocketKind): readonly SockoptName[] {
  const out = [...SOCKET_LEVEL_OPTS];
  if (k.domain !== AF.INET && k.domain !== AF.INET6) return out;
  // An IPv6 socket takes IPv4 options too, for the v4-mapped traffic of a dual-stack socket.
  out.push(...IP_LEVEL_OPTS);
  if (k.domain === AF.INET6) out.push(...IPV6_LEVEL_OPTS);
  if (k.type === SOCK.STREAM && k.protocol === IPPROTO.TCP) out.push(...TCP_LEVEL_OPTS);
  if (k.type === SOCK.DGRAM && k.protocol === IPPROTO.UDP) out.push(...UDP_LEVEL_OPTS);
  return k.type === SOCK.STREAM ? out.filter((o) => !o.notStream) : out;
}

/** The option's value as getsockopt gives it, or null when this socket has no such option. */
export function readOpt(fd: number, o: SockoptName): Buffer | null {
  const buf = Buffer.alloc(64);
  const len = Buffer.alloc(4);
  len.writeUInt32LE(buf.length);
  if (sysTry('getsockopt', [fd, o.level, o.name, buf, len]).ret < 0) return null;
  return buf.subarray(0, Math.min(buf.length, len.readUInt32LE(0)));
}

/** How the verification and messages spell a value: an integer, or the bytes in hex. */
export function optText(b: Uint8Array): string {
  return b.length === 4 ? String(Buffer.from(b).readInt32LE(0)) : Buffer.from(b).toString('hex');
}

/** A fresh socket's values, per kind, read once per run. */
const fresh = new Map<string, Map<string, string> | null>();

function freshValues(k: SocketKind): Map<string, string> | null {
  const key = `${k.domain}/${k.type}/${k.protocol}`;
  if (!fresh.has(key)) {
    let fd = -1;
    try {
      fd = socket(k.domain, k.type, k.protocol);
    } catch {
      fresh.set(key, null); // a kind cryo cannot make here: nothing to compare with
      return null;
    }
    const values = new Map<string, string>();
    try {
      for (const o of optionsFor(k)) {
        const v = readOpt(fd, o);
        if (v) values.set(o.label, v.toString('hex'));
      }
    } finally {
      closeFd(fd);
    }
    fresh.set(key, values);
  }
  return fresh.get(key)!;
}

function connected(fd: number): boolean {
  try {
    return getpeername(fd) !== null;
  } catch {
    return false;
  }
}

const TCP_INFO: SockoptName = { level: SOL.TCP, name: 11, label: 'TCP_INFO', when: 'any' };
/** The largest TCP_MAXSEG setsockopt takes (MAX_TCP_WINDOW): a closed socket that was connected shows its connection's MSS, which may be larger */
const MAX_TCP_MAXSEG = 32767;

/**
 * Whether getsockopt shows what was set for option `o` of this socket in its TCP state (any
 * option without `tcpStates`); elsewhere the value is the kernel's, and neither kept nor compared.
 */
export function inItsState(fd: number, o: SockoptName): boolean {
  if (!o.tcpStates) return true;
  const state = readOpt(fd, TCP_INFO)?.[0]; // tcpi_state
  return state !== undefined && o.tcpStates.includes(state);
}

/** Whether option `o` of this socket is one to keep: not the kernel's own working value. */
function keeps(fd: number, o: SockoptName, v: Buffer, isConnected: boolean): boolean {
  if (o.when === 'unconnected' && isConnected) return false;
  if (!inItsState(fd, o)) return false;
  return !(o.level === SOL.TCP && o.name === 2 && v.length === 4 && v.readInt32LE(0) > MAX_TCP_MAXSEG);
}

/** The options of our copy of a socket that differ from a fresh socket's. */
export function dumpProtoOpts(fd: number): ProtoOpt[] {
  const k = socketKind(fd);
  const ref = freshValues(k);
  if (!ref) return [];
  const isConnected = connected(fd);
  const out: ProtoOpt[] = [];
  for (const o of optionsFor(k)) {
    const v = readOpt(fd, o);
    if (!v || ref.get(o.label) === v.toString('hex') || !keeps(fd, o, v, isConnected)) continue;
    out.push(v.length === 4 ? { level: o.level, name: o.name, value: v.readInt32LE(0) } : { level: o.level, name: o.name, raw: new Uint8Array(v) });
  }
  return out;
}

const EVERY_OPT = [...SOCKET_LEVEL_OPTS, ...IP_LEVEL_OPTS, ...IPV6_LEVEL_OPTS, ...TCP_LEVEL_OPTS, ...UDP_LEVEL_OPTS];

function nameOf(level: number, name: number): SockoptName | undefined {
  return EVERY_OPT.find((o) => o.level === level && o.name === name);
}

/** The bytes a record holds, as getsockopt gave them. */
export function recordBytes(o: ProtoOpt): Uint8Array {
  if (hasField(cryo_sockopt_entrySchema, o, 'value')) {
    const b = Buffer.alloc(4);
    b.writeInt32LE(o.value ?? 0);
    return b;
  }
  return o.raw ?? new Uint8Array();
}

export function optLabel(o: ProtoOpt): string {
  return nameOf(o.level, o.name)?.label ?? `option ${o.level}:${o.name}`;
}

/** Puts the recorded options on a new socket; a value the kernel refuses fails the restore. */
export function restoreProtoOpts(fd: number, opts: ProtoOpt[], what: string): void {
  for (const o of opts) {
    let b = Buffer.from(recordBytes(o));
    if (nameOf(o.level, o.name)?.text) b = b.subarray(0, b.indexOf(0) < 0 ? b.length : b.indexOf(0));
    setsockoptRaw(fd, o.level, o.name, b, `${what}: ${optLabel(o)} ${optText(recordBytes(o))}`);
  }
}
