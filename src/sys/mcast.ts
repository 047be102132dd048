// Multicast membership of a socket, through the protocol-independent MCAST_* options (RFC 3678):
// struct group_req and struct group_filter as x86_64 lays them out (sockaddr_storage is 8-byte
// aligned, so the group starts at 8 and the filter's mode, count and sources at 136, 140, 144).
import { sysTry, sys } from './libc.js';
import { AF, SOL } from './socket.js';
import { E } from './errno.js';

const MCAST_JOIN_GROUP = 42;
const MCAST_MSFILTER = 48;
const SIOCGIFINDEX = 0x8933;
const SS = 128;
const FILTER_HEAD = 144;
/** Sources read per group: more than any program sets (the kernel's limit is 10 by default). */
const MAX_SOURCES = 64;

export const MCAST_INCLUDE = 1;
export const MCAST_EXCLUDE = 0;

export interface GroupFilter {
  ifindex: number;
  /** 4 or 16 bytes */
  group: Buffer;
  mode: number;
  sources: Buffer[];
}

function storage(family: number, addr: Buffer): Buffer {
  const b = Buffer.alloc(SS);
  b.writeUInt16LE(family, 0);
  addr.copy(b, family === AF.INET ? 4 : 8);
  return b;
}

function addrOf(family: number, ss: Buffer): Buffer {
  return Buffer.from(family === AF.INET ? ss.subarray(4, 8) : ss.subarray(8, 24));
}

const levelOf = (family: number) => (family === AF.INET ? SOL.IP : SOL.IPV6);

/** The socket's filter for `group` on `ifindex`, or null when it has not joined it there. */
export function groupFilter(fd: number, family: number, ifindex: number, group: Buffer): GroupFilter | null {
  const buf = Buffer.alloc(FILTER_HEAD + MAX_SOURCES * SS);
  buf.writeUInt32LE(ifindex, 0);
  storage(family, group).copy(buf, 8);
  buf.writeUInt32LE(MAX_SOURCES, 140);
  const len = Buffer.alloc(4);
  len.writeUInt32LE(buf.length);
  const r = sysTry('getsockopt', [fd, levelOf(family), MCAST_MSFILTER, buf, len]);
  if (r.ret < 0) {
    if (r.errno === E.EADDRNOTAVAIL || r.errno === E.EINVAL || r.errno === E.ENODEV) return null;
    throw new Error(`getsockopt MCAST_MSFILTER: errno ${r.errno}`);
  }
  const n = Math.min(buf.readUInt32LE(140), MAX_SOURCES);
  const sources = Array.from({ length: n }, (_, i) => addrOf(family, buf.subarray(FILTER_HEAD + i * SS, FILTER_HEAD + (i + 1) * SS)));
  return { ifindex, group, mode: buf.readUInt32LE(136), sources };
}

/** Joins `group` on `ifindex`, then sets its source filter when it is not "every source". */
export function joinGroup(fd: number, family: number, f: GroupFilter, what: string): void {
  const req = Buffer.alloc(8 + SS);
  req.writeUInt32LE(f.ifindex, 0);
  storage(family, f.group).copy(req, 8);
  sys('setsockopt', [fd, levelOf(family), MCAST_JOIN_GROUP, req, req.length], `${what}: MCAST_JOIN_GROUP`);
  if (f.mode === MCAST_EXCLUDE && !f.sources.length) return;
  const buf = Buffer.alloc(FILTER_HEAD + f.sources.length * SS);
  buf.writeUInt32LE(f.ifindex, 0);
  storage(family, f.group).copy(buf, 8);
  buf.writeUInt32LE(f.mode, 136);
  buf.writeUInt32LE(f.sources.length, 140);
  f.sources.forEach((s, i) => storage(family, s).copy(buf, FILTER_HEAD + i * SS));
  sys('setsockopt', [fd, levelOf(family), MCAST_MSFILTER, buf, buf.length], `${what}: MCAST_MSFILTER`);
}

/** The index of interface `name` in the socket's own network namespace. */
export function ifindexIn(fd: number, name: string): number {
  const ifr = Buffer.alloc(40);
  ifr.write(name, 0, 15, 'utf8');
  sys('ioctl', [fd, SIOCGIFINDEX, ifr], `interface ${name}`);
  return ifr.readInt32LE(16);
}
