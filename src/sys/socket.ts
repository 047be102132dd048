// Sockets at the kernel boundary: the BSD socket calls, socket addresses as raw bytes, reading a
// receive queue without consuming it (SO_PEEK_OFF + MSG_PEEK), and the sock_diag netlink query
// that is the only place the kernel tells who a unix socket's peer is.
import { sys, sysTry, addressOf } from './libc.js';
import { E, SysError } from './errno.js';

export const AF = { UNIX: 1, INET: 2, INET6: 10, NETLINK: 16 } as const;
export const SOCK = { STREAM: 1, DGRAM: 2, RAW: 3, SEQPACKET: 5, NONBLOCK: 0o4000, CLOEXEC: 0o2000000 } as const;
export const SOL = { SOCKET: 1, IP: 0, IPV6: 41, TCP: 6 } as const;
export const IPPROTO = { TCP: 6, UDP: 17, RAW: 255 } as const;
export const SO = {
  DEBUG: 1, REUSEADDR: 2, TYPE: 3, ERROR: 4, DONTROUTE: 5, BROADCAST: 6, SNDBUF: 7, RCVBUF: 8,
  KEEPALIVE: 9, OOBINLINE: 10, NO_CHECK: 11, PRIORITY: 12, LINGER: 13, REUSEPORT: 15, PASSCRED: 16,
  RCVLOWAT: 18, RCVTIMEO: 20, SNDTIMEO: 21, ACCEPTCONN: 30, SNDBUFFORCE: 32, RCVBUFFORCE: 33,
  PEERCRED: 17, PASSSEC: 34, MARK: 36, PROTOCOL: 38, DOMAIN: 39, PEEK_OFF: 42, PEERGROUPS: 59,
} as const;
export const TCP_OPT = { NODELAY: 1, KEEPIDLE: 4, KEEPINTVL: 5, KEEPCNT: 6, INFO: 11, CORK: 3 } as const;
export const IPV6_V6ONLY = 26;
/** TCP states as the kernel numbers them (also used for unix sockets by sock_diag). */
export const TCP_STATE = {
  ESTABLISHED: 1, SYN_SENT: 2, SYN_RECV: 3, FIN_WAIT1: 4, FIN_WAIT2: 5, TIME_WAIT: 6, CLOSE: 7,
  CLOSE_WAIT: 8, LAST_ACK: 9, LISTEN: 10, CLOSING: 11,
} as const;
export const MSG = { PEEK: 2, TRUNC: 0x20, DONTWAIT: 0x40, CTRUNC: 8, NOSIGNAL: 0x4000 } as const;
/** The control message type of fds in flight (linux/socket.h); also sk_packet_entry.scm type. */
export const SCM_RIGHTS = 1;
/** The control message of a sender's pid, uid and gid (struct ucred), for a SO_PASSCRED receiver. */
export const SCM_CREDENTIALS = 2;

/** struct ucred: a message's sender, as the reader's namespaces show it. */
export interface Ucred {
  pid: number;
  uid: number;
  gid: number;
}

export function socket(family: number, type: number, protocol = 0): number {
  return sys('socket', [family, type | SOCK.CLOEXEC, protocol], `socket(${family}, ${type})`);
}

export function socketpair(type: number): [number, number] {
  const fds = Buffer.alloc(8);
  sys('socketpair', [AF.UNIX, type | SOCK.CLOEXEC, 0, fds], 'socketpair');
  return [fds.readInt32LE(0), fds.readInt32LE(4)];
}

export function getsockoptRaw(fd: number, level: number, opt: number, size: number): Buffer {
  const buf = Buffer.alloc(size);
  const len = Buffer.alloc(4);
  len.writeUInt32LE(size);
  sys('getsockopt', [fd, level, opt, buf, len], `getsockopt(${level}, ${opt})`);
  return buf.subarray(0, len.readUInt32LE(0));
}

export function getsockoptInt(fd: number, level: number, opt: number): number {
  return getsockoptRaw(fd, level, opt, 4).readInt32LE(0);
}

export function setsockoptRaw(fd: number, level: number, opt: number, value: Buffer, what = `setsockopt(${level}, ${opt})`): void {
  sys('setsockopt', [fd, level, opt, value, value.length], what);
}

export function setsockoptInt(fd: number, level: number, opt: number, value: number, what?: string): void {
  const b = Buffer.alloc(4);
  b.writeInt32LE(value);
  setsockoptRaw(fd, level, opt, b, what);
}

/** SO_ATTACH_FILTER and SO_GET_FILTER share a number; SO_LOCK_FILTER pins what is attached. */
export const SO_FILTER = { ATTACH: 26, DETACH: 27, LOCK: 44 } as const;

/**
 * The socket's filter (SO_ATTACH_FILTER): its classic BPF instructions, 8 bytes each, as the
 * program attached them; null without one; 'ebpf' for a program of SO_ATTACH_BPF, which the
 * kernel keeps no readable copy of (EACCES). getsockopt counts in instructions, not bytes.
 */
export function socketFilter(fd: number): Buffer | 'ebpf' | null {
  const len = Buffer.alloc(4);
  const probe = Buffer.alloc(8);
  const r = sysTry('getsockopt', [fd, SOL.SOCKET, SO_FILTER.ATTACH, probe, len]);
  if (r.ret < 0) {
    if (r.errno === E.EACCES) return 'ebpf';
    throw new SysError('getsockopt(SO_GET_FILTER)', r.errno);
  }
  const count = len.readUInt32LE(0);
  if (!count) return null;
  const insns = Buffer.alloc(count * 8);
  len.writeUInt32LE(count);
  sys('getsockopt', [fd, SOL.SOCKET, SO_FILTER.ATTACH, insns, len], 'getsockopt(SO_GET_FILTER)');
  return insns.subarray(0, len.readUInt32LE(0) * 8);
}

/** Attaches classic BPF instructions (8 bytes each) as the socket's filter (struct sock_fprog). */
export function attachSocketFilter(fd: number, insns: Buffer, what = 'setsockopt(SO_ATTACH_FILTER)'): void {
  const prog = Buffer.alloc(16);
  prog.writeUInt16LE(insns.length / 8, 0);
  prog.writeBigUInt64LE(addressOf(insns), 8);
  sys('setsockopt', [fd, SOL.SOCKET, SO_FILTER.ATTACH, prog, prog.length], what);
}

function nameCall(call: 'getsockname' | 'getpeername', fd: number): Buffer | null {
  const buf = Buffer.alloc(128);
  const len = Buffer.alloc(4);
  len.writeUInt32LE(buf.length);
  const r = sysTry(call, [fd, buf, len]);
  if (r.ret < 0) {
    if (r.errno === E.ENOTCONN) return null;
    throw new SysError(call, r.errno);
  }
  return buf.subarray(0, Math.min(buf.length, len.readUInt32LE(0)));
}

/** The raw sockaddr a socket is bound to. */
export const getsockname = (fd: number): Buffer => nameCall('getsockname', fd)!;
/** The raw sockaddr of the peer, or null when not connected. */
export const getpeername = (fd: number): Buffer | null => nameCall('getpeername', fd);

export function bind(fd: number, addr: Buffer, what: string): void {
  sys('bind', [fd, addr, addr.length], what);
}

export function listen(fd: number, backlog: number, what: string): void {
  sys('listen', [fd, backlog], what);
}

export function connect(fd: number, addr: Buffer, what: string): void {
  sys('connect', [fd, addr, addr.length], what);
}

export function shutdown(fd: number, how: number, what: string): void {
  sys('shutdown', [fd, how], what);
}

/**
 * Sends one message (a datagram, or part of a stream); to `addr` when given. Never blocks: a
 * full buffer is an error (EAGAIN), not a hang.
 */
export function send(fd: number, data: Buffer, addr?: Buffer): number {
  const body = data.length ? data : Buffer.alloc(1);
  return sys('sendto', [fd, body, data.length, MSG.NOSIGNAL | MSG.DONTWAIT, addr ?? 0, addr?.length ?? 0], 'send');
}

/** A unix address: a path, or an abstract name (leading NUL byte). */
export function unixAddr(name: Buffer): Buffer {
  const a = Buffer.alloc(2 + name.length);
  a.writeUInt16LE(AF.UNIX, 0);
  name.copy(a, 2);
  return a;
}

export interface InetAddr {
  family: number;
  port: number;
  /** Address bytes in network order: 4 for IPv4, 16 for IPv6. */
  addr: Buffer;
}

export function decodeInetAddr(sa: Buffer): InetAddr {
  const family = sa.readUInt16LE(0);
  const port = sa.readUInt16BE(2);
  if (family === AF.INET) return { family, port, addr: Buffer.from(sa.subarray(4, 8)) };
  if (family === AF.INET6) return { family, port, addr: Buffer.from(sa.subarray(8, 24)) };
  throw new Error(`not an inet address (family ${family})`);
}

export function encodeInetAddr(a: InetAddr): Buffer {
  const sa = Buffer.alloc(a.family === AF.INET ? 16 : 28);
  sa.writeUInt16LE(a.family, 0);
  sa.writeUInt16BE(a.port, 2);
  a.addr.copy(sa, a.family === AF.INET ? 4 : 8);
  return sa;
}

/** One message of a receive queue, read without taking it off the queue. */
export interface QueuedMessage {
  data: Buffer;
  /**
   * The fds it carries (SCM_RIGHTS), as new fds of ours on the same open file descriptions:
   * the caller closes them.
   */
  fds: number[];
  /** Who sent it (a datagram socket's msg_name), when asked for. */
  from?: Buffer;
  /** Its sender's credentials (SCM_CREDENTIALS), when the socket has SO_PASSCRED. */
  creds?: Ucred;
}

/**
 * Every message waiting in a socket's receive queue, left in place: with SO_PEEK_OFF set each
 * MSG_PEEK moves past what it returned. The socket's own peek offset is put back afterwards.
 * Stream data comes back in the pieces the kernel returns (a piece ends where fds are attached),
 * not as the sender wrote it.
 *
 * A datagram or seqpacket socket can hold empty messages (0 bytes: a wake-up). A peek at an
 * offset returns one once and marks it peeked; from then on every peek at an offset steps over it
 * (skb->peeked, net/core/datagram.c), and only a peek without an offset still sees it, at the head
 * of the queue. So the head is peeked that way first, and an empty message the walk returns is a
 * message, not the end (the end is EAGAIN). A seqpacket socket whose peer is gone returns 0 at its
 * end too: there SO_PASSCRED is on for the walk, so that a message (even an empty one) comes with
 * a credentials record and the end without one (those credentials are not kept unless the socket
 * asked for them itself). An empty message marked peeked before this walk and not at the head
 * cannot be seen by any peek (resources/files/queue-walks.ts keeps what one walk saw).
 */
export function peekQueue(fd: number, maxMessage: number, opts: { senders?: boolean } = {}): QueuedMessage[] {
  const type = getsockoptInt(fd, SOL.SOCKET, SO.TYPE);
  const records = type !== SOCK.STREAM;
  const ownCreds = type === SOCK.SEQPACKET && getsockoptInt(fd, SOL.SOCKET, SO.PASSCRED) === 0;
  const saved = getsockoptInt(fd, SOL.SOCKET, SO.PEEK_OFF);
  if (ownCreds) setsockoptInt(fd, SOL.SOCKET, SO.PASSCRED, 1, 'SO_PASSCRED');
  const data = Buffer.alloc(maxMessage);
  const control = Buffer.alloc(4096);
  const iov = Buffer.alloc(16);
  iov.writeBigUInt64LE(addressOf(data), 0);
  iov.writeBigUInt64LE(BigInt(data.length), 8);
  const msg = Buffer.alloc(56);
  const name = Buffer.alloc(128); // a sockaddr_storage
  if (opts.senders) msg.writeBigUInt64LE(addressOf(name), 0);
  msg.writeBigUInt64LE(addressOf(iov), 16);
  msg.writeBigUInt64LE(1n, 24);
  msg.writeBigUInt64LE(addressOf(control), 32);
  /** The next message at the current peek offset; null at the end of the queue. */
  const next = (): QueuedMessage | null => {
    msg.writeBigUInt64LE(BigInt(control.length), 40);
    if (opts.senders) msg.writeUInt32LE(name.length, 8);
    const r = sysTry('recvmsg', [fd, msg, MSG.PEEK | MSG.DONTWAIT | MSG_CMSG_CLOEXEC]);
    if (r.ret < 0) {
      if (r.errno === E.EAGAIN) return null;
      throw new SysError('recvmsg', r.errno, 'peeking a socket queue');
    }
    const clen = Number(msg.readBigUInt64LE(40));
    const fds = receivedFds(control, clen);
    const flags = msg.readInt32LE(48);
    if (flags & (MSG.TRUNC | MSG.CTRUNC)) {
      for (const f of fds) sys('close', [f]);
      throw new Error(`a queued message is larger than ${maxMessage} bytes or carries too many fds`);
    }
    const creds = receivedCreds(control, clen);
    // A stream at EOF; a seqpacket socket at its end once its peer is gone (no credentials).
    if (r.ret === 0 && !fds.length && (!records || (type === SOCK.SEQPACKET && !creds))) return null;
    const from = opts.senders ? { from: Buffer.from(name.subarray(0, msg.readUInt32LE(8))) } : {};
    return { data: Buffer.from(data.subarray(0, r.ret)), fds, ...from, ...(creds && !ownCreds ? { creds } : {}) };
  };
  const out: QueuedMessage[] = [];
  try {
    if (records) {
      setsockoptInt(fd, SOL.SOCKET, SO.PEEK_OFF, -1, 'SO_PEEK_OFF');
      const head = next();
      if (head?.data.length === 0) out.push(head);
      else for (const f of head?.fds ?? []) sys('close', [f]);
    }
    setsockoptInt(fd, SOL.SOCKET, SO.PEEK_OFF, 0, 'SO_PEEK_OFF');
    for (let m = next(); m; m = next()) {
      out.push(m);
      if (out.length > MAX_QUEUED) throw new Error(`more than ${MAX_QUEUED} messages queued on one socket`);
    }
  } catch (e) {
    for (const m of out) for (const f of m.fds) sys('close', [f]);
    throw e;
  } finally {
    setsockoptInt(fd, SOL.SOCKET, SO.PEEK_OFF, saved, 'SO_PEEK_OFF');
    if (ownCreds) setsockoptInt(fd, SOL.SOCKET, SO.PASSCRED, 0, 'SO_PASSCRED');
  }
  return out;
}

/** More than a socket's buffers hold (each message costs its sender a few hundred bytes at least). */
const MAX_QUEUED = 1 << 20;

const MSG_CMSG_CLOEXEC = 0x40000000;

/** The fds of the SCM_RIGHTS messages in a control buffer. */
function receivedFds(control: Buffer, len: number): number[] {
  const fds: number[] = [];
  for (let off = 0; off + 16 <= len; ) {
    const clen = Number(control.readBigUInt64LE(off));
    if (clen < 16) break;
    if (control.readInt32LE(off + 8) === SOL.SOCKET && control.readInt32LE(off + 12) === SCM_RIGHTS) {
      for (let p = off + 16; p + 4 <= off + clen; p += 4) fds.push(control.readInt32LE(p));
    }
    off += (clen + 7) & ~7;
  }
  return fds;
}

function receivedCreds(control: Buffer, len: number): Ucred | null {
  for (let off = 0; off + 16 <= len; ) {
    const clen = Number(control.readBigUInt64LE(off));
    if (clen < 16) break;
    if (control.readInt32LE(off + 8) === SOL.SOCKET && control.readInt32LE(off + 12) === SCM_CREDENTIALS && clen >= 28) {
      return { pid: control.readInt32LE(off + 16), uid: control.readUInt32LE(off + 20), gid: control.readUInt32LE(off + 24) };
    }
    off += (clen + 7) & ~7;
  }
  return null;
}

/**
 * Sends `data` with `fds` attached (SCM_RIGHTS), to `addr` when given, with `creds` as its
 * sender's (SCM_CREDENTIALS: cryo may name any pid that exists, and any ids). Never blocks.
 */
export function sendWithFds(fd: number, data: Buffer, fds: number[], addr?: Buffer, creds?: Ucred): number {
  const body = data.length ? data : Buffer.alloc(1);
  const iov = Buffer.alloc(16);
  iov.writeBigUInt64LE(addressOf(body), 0);
  iov.writeBigUInt64LE(BigInt(data.length), 8);
  const clen = 16 + 4 * fds.length;
  const rights = (clen + 7) & ~7;
  const control = Buffer.alloc(rights + (creds ? 32 : 0));
  control.writeBigUInt64LE(BigInt(clen), 0);
  control.writeInt32LE(SOL.SOCKET, 8);
  control.writeInt32LE(SCM_RIGHTS, 12);
  fds.forEach((f, i) => control.writeInt32LE(f, 16 + 4 * i));
  if (creds) {
    control.writeBigUInt64LE(28n, rights);
    control.writeInt32LE(SOL.SOCKET, rights + 8);
    control.writeInt32LE(SCM_CREDENTIALS, rights + 12);
    control.writeInt32LE(creds.pid, rights + 16);
    control.writeUInt32LE(creds.uid, rights + 20);
    control.writeUInt32LE(creds.gid, rights + 24);
  }
  const msg = Buffer.alloc(56);
  if (addr) {
    msg.writeBigUInt64LE(addressOf(addr), 0);
    msg.writeUInt32LE(addr.length, 8);
  }
  msg.writeBigUInt64LE(addressOf(iov), 16);
  msg.writeBigUInt64LE(1n, 24);
  msg.writeBigUInt64LE(addressOf(control), 32);
  msg.writeBigUInt64LE(BigInt(control.length), 40);
  return sys('sendmsg', [fd, msg, MSG.NOSIGNAL | MSG.DONTWAIT], 'sendmsg with fds');
}

/** What sock_diag knows about one unix socket. */
export interface UnixDiag {
  ino: number;
  type: number;
  state: number;
  /** Bound name (a path, or an abstract name starting with a NUL byte); empty when unbound. */
  name: Buffer;
  /** Inode of the connected peer, 0 if none. */
  peer: number;
  /** Listening sockets: inodes of connections not accepted yet. */
  icons: number[];
  /** Listening: connections waiting / backlog limit. Others: bytes queued in / out. */
  rqueue: number;
  wqueue: number;
  /** SHUT_RD (1) / SHUT_WR (2) bits of this side. */
  shutdown: number;
  /** The bound path's inode and device, when bound to a path. */
  vfs?: { ino: number; dev: number };
}

const NLMSG = { ERROR: 2, DONE: 3 };
const SOCK_DIAG_BY_FAMILY = 20;
const NLM_F_REQUEST = 1;
const NLM_F_DUMP = 0x300;
const UDIAG_SHOW = { NAME: 1, VFS: 2, PEER: 4, ICONS: 8, RQLEN: 0x10 };
const UNIX_DIAG = { NAME: 0, VFS: 1, PEER: 2, ICONS: 3, RQLEN: 4, SHUTDOWN: 6 };

/** Every unix socket of our network namespace, by inode (one sock_diag dump). */
export function unixSockets(): Map<number, UnixDiag> {
  const nl = sys('socket', [AF.NETLINK, SOCK.DGRAM | SOCK.CLOEXEC, 4 /* NETLINK_SOCK_DIAG */], 'sock_diag');
  const out = new Map<number, UnixDiag>();
  try {
    const req = Buffer.alloc(16 + 24);
    req.writeUInt32LE(req.length, 0);
    req.writeUInt16LE(SOCK_DIAG_BY_FAMILY, 4);
    req.writeUInt16LE(NLM_F_REQUEST | NLM_F_DUMP, 6);
    req.writeUInt32LE(1, 8);
    req.writeUInt8(AF.UNIX, 16);
    req.writeUInt32LE(0xffffffff, 20); // all states
    req.writeUInt32LE(UDIAG_SHOW.NAME | UDIAG_SHOW.VFS | UDIAG_SHOW.PEER | UDIAG_SHOW.ICONS | UDIAG_SHOW.RQLEN, 28);
    sys('sendto', [nl, req, req.length, 0, 0, 0], 'sock_diag request');
    const buf = Buffer.alloc(64 * 1024);
    for (;;) {
      const n = sys('recvfrom', [nl, buf, buf.length, 0, 0, 0], 'sock_diag reply');
      for (let off = 0; off + 16 <= n; ) {
        const len = buf.readUInt32LE(off);
        const type = buf.readUInt16LE(off + 4);
        if (type === NLMSG.DONE) return out;
        if (type === NLMSG.ERROR) throw new SysError('sock_diag', -buf.readInt32LE(off + 16));
        const d = parseUnixDiag(buf.subarray(off + 16, off + len));
        out.set(d.ino, d);
        off += (len + 3) & ~3;
      }
    }
  } finally {
    sys('close', [nl]);
  }
}

function parseUnixDiag(m: Buffer): UnixDiag {
  const d: UnixDiag = {
    type: m.readUInt8(1), state: m.readUInt8(2), ino: m.readUInt32LE(4),
    name: Buffer.alloc(0), peer: 0, icons: [], rqueue: 0, wqueue: 0, shutdown: 0,
  };
  for (let off = 16; off + 4 <= m.length; ) {
    const len = m.readUInt16LE(off);
    const type = m.readUInt16LE(off + 2);
    if (len < 4) break;
    const v = m.subarray(off + 4, off + len);
    if (type === UNIX_DIAG.NAME) d.name = Buffer.from(v);
    else if (type === UNIX_DIAG.VFS) d.vfs = { ino: v.readUInt32LE(0), dev: v.readUInt32LE(4) };
    else if (type === UNIX_DIAG.PEER) d.peer = v.readUInt32LE(0);
    else if (type === UNIX_DIAG.ICONS) for (let i = 0; i + 4 <= v.length; i += 4) d.icons.push(v.readUInt32LE(i));
    else if (type === UNIX_DIAG.RQLEN) { d.rqueue = v.readUInt32LE(0); d.wqueue = v.readUInt32LE(4); }
    else if (type === UNIX_DIAG.SHUTDOWN) d.shutdown = v.readUInt8(0);
    off += (len + 3) & ~3;
  }
  return d;
}

/** What SO_PEERCRED and SO_PEERGROUPS show on a socket; null when it has no peer credentials. */
export function peerCredentials(fd: number): { pid: number; uid: number; gid: number; groups: number[] } | null {
  const c = getsockoptRaw(fd, SOL.SOCKET, SO.PEERCRED, 12);
  const pid = c.readInt32LE(0);
  if (pid <= 0) return null;
  let groups: number[] = [];
  for (let size = 256; ; size *= 4) {
    const buf = Buffer.alloc(size);
    const len = Buffer.alloc(4);
    len.writeUInt32LE(size);
    const r = sysTry('getsockopt', [fd, SOL.SOCKET, SO.PEERGROUPS, buf, len]);
    if (r.ret === 0) {
      groups = Array.from({ length: len.readUInt32LE(0) / 4 }, (_, i) => buf.readUInt32LE(i * 4));
      break;
    }
    if (r.errno === E.ENOPROTOOPT) break; // before Linux 4.13
    if (r.errno !== E.ERANGE || size > 1 << 20) throw new SysError('getsockopt', r.errno, 'SO_PEERGROUPS');
  }
  return { pid, uid: c.readUInt32LE(4), gid: c.readUInt32LE(8), groups };
}
