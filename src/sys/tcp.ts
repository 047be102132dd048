// TCP repair mode at the kernel boundary (include/uapi/linux/tcp.h, linux/sockios.h): the socket
// options that read and set a connection's hidden state, the queue-length ioctls, the layout of
// the struct tcp_info prefix cryo reads, and peeking a repair queue's bytes.
import { sys, sysTry } from './libc.js';
import { E, SysError } from './errno.js';
import { SOL, MSG, getsockoptRaw, getsockoptInt, setsockoptInt, setsockoptRaw } from './socket.js';

export const TCP_REPAIR_OPT = {
  MAXSEG: 2,
  CORK: 3,
  REPAIR: 19,
  REPAIR_QUEUE: 20,
  QUEUE_SEQ: 21,
  REPAIR_OPTIONS: 22,
  TIMESTAMP: 24,
  REPAIR_WINDOW: 29,
} as const;

/** Values of TCP_REPAIR. OFF_NO_WP leaves repair mode without the window probe OFF sends. */
export const TCP_REPAIR_MODE = { OFF: 0, ON: 1, OFF_NO_WP: -1 } as const;

/** Which queue TCP_QUEUE_SEQ, send() and recv(MSG_PEEK) act on in repair mode. */
export const TCP_QUEUE = { NONE: 0, RECV: 1, SEND: 2 } as const;

/** opt_code of a struct tcp_repair_opt (the TCP option kinds of RFC 793/1323/2018). */
export const TCPOPT = { MAXSEG: 2, WINDOW: 3, SACK_PERM: 4, TIMESTAMP: 8 } as const;

/** tcpi_options bits (CRIU's tcp_stream_entry.opt_mask holds them as they are). */
export const TCPI_OPT = { TIMESTAMPS: 1, SACK: 2, WSCALE: 4, ECN: 8 } as const;

/** Queue lengths: SIOCINQ (= FIONREAD) unread bytes; SIOCOUTQ all of the send queue; SIOCOUTQNSD its never-sent part. */
export const SIOC = { INQ: 0x541b, OUTQ: 0x5411, OUTQNSD: 0x894b } as const;

/** The first fields of struct tcp_info (the layout has only grown at its end since 2.6). */
export interface TcpInfoHead {
  state: number;
  /** TCPI_OPT_* bits negotiated at the handshake. */
  options: number;
  sndWscale: number;
  rcvWscale: number;
  sndMss: number;
  rcvMss: number;
}

export function tcpInfoHead(fd: number): TcpInfoHead {
  const b = getsockoptRaw(fd, SOL.TCP, 11 /* TCP_INFO */, 104);
  if (b.length < 24) throw new Error(`TCP_INFO returned ${b.length} bytes`);
  const ws = b.readUInt8(6);
  return { state: b.readUInt8(0), options: b.readUInt8(5), sndWscale: ws & 0xf, rcvWscale: ws >> 4, sndMss: b.readUInt32LE(16), rcvMss: b.readUInt32LE(20) };
}

/** An int-valued socket ioctl (the queue lengths). */
export function ioctlInt(fd: number, req: number, what: string): number {
  const b = Buffer.alloc(4);
  sys('ioctl', [fd, req, b], what);
  return b.readInt32LE(0);
}

export function setTcpRepair(fd: number, mode: number): void {
  setsockoptInt(fd, SOL.TCP, TCP_REPAIR_OPT.REPAIR, mode, `TCP_REPAIR ${mode}`);
}

/** TCP_REPAIR as errno instead of an exception, for cleanup paths that must go on. */
export function trySetTcpRepair(fd: number, mode: number): number {
  const b = Buffer.alloc(4);
  b.writeInt32LE(mode);
  return sysTry('setsockopt', [fd, SOL.TCP, TCP_REPAIR_OPT.REPAIR, b, 4]).errno;
}

export function tcpRepairOn(fd: number): boolean {
  return getsockoptInt(fd, SOL.TCP, TCP_REPAIR_OPT.REPAIR) === 1;
}

export function selectRepairQueue(fd: number, q: number): void {
  setsockoptInt(fd, SOL.TCP, TCP_REPAIR_OPT.REPAIR_QUEUE, q, `TCP_REPAIR_QUEUE ${q}`);
}

export function getQueueSeq(fd: number): number {
  return getsockoptInt(fd, SOL.TCP, TCP_REPAIR_OPT.QUEUE_SEQ) >>> 0;
}

export function setQueueSeq(fd: number, seq: number): void {
  setsockoptInt(fd, SOL.TCP, TCP_REPAIR_OPT.QUEUE_SEQ, seq | 0, `TCP_QUEUE_SEQ ${seq >>> 0}`);
}

/** struct tcp_repair_opt array for TCP_REPAIR_OPTIONS. */
export function setRepairOptions(fd: number, opts: Array<[code: number, val: number]>): void {
  if (opts.length === 0) return;
  const b = Buffer.alloc(8 * opts.length);
  opts.forEach(([code, val], i) => {
    b.writeUInt32LE(code, i * 8);
    b.writeUInt32LE(val >>> 0, i * 8 + 4);
  });
  setsockoptRaw(fd, SOL.TCP, TCP_REPAIR_OPT.REPAIR_OPTIONS, b, 'TCP_REPAIR_OPTIONS');
}

/** struct tcp_repair_window: five u32 in this order. */
export interface TcpRepairWindow {
  sndWl1: number;
  sndWnd: number;
  maxWindow: number;
  rcvWnd: number;
  rcvWup: number;
}

export function getRepairWindow(fd: number): TcpRepairWindow {
  const b = getsockoptRaw(fd, SOL.TCP, TCP_REPAIR_OPT.REPAIR_WINDOW, 20);
  if (b.length !== 20) throw new Error(`TCP_REPAIR_WINDOW returned ${b.length} bytes`);
  return { sndWl1: b.readUInt32LE(0), sndWnd: b.readUInt32LE(4), maxWindow: b.readUInt32LE(8), rcvWnd: b.readUInt32LE(12), rcvWup: b.readUInt32LE(16) };
}

export function setRepairWindow(fd: number, w: TcpRepairWindow): void {
  const b = Buffer.alloc(20);
  [w.sndWl1, w.sndWnd, w.maxWindow, w.rcvWnd, w.rcvWup].forEach((v, i) => b.writeUInt32LE(v >>> 0, i * 4));
  setsockoptRaw(fd, SOL.TCP, TCP_REPAIR_OPT.REPAIR_WINDOW, b, 'TCP_REPAIR_WINDOW');
}

/**
 * The first `len` bytes of the selected repair queue, left in place (recv with MSG_PEEK: in
 * repair mode it reads the send queue too). One call returns what is queued, across segments.
 */
export function peekRepairQueue(fd: number, len: number, what: string): Buffer {
  const buf = Buffer.alloc(len);
  if (len === 0) return buf;
  const n = sys('recvfrom', [fd, buf, len, MSG.PEEK | MSG.DONTWAIT, 0, 0], what);
  if (n !== len) throw new Error(`${what}: ${n} of ${len} queued bytes could be read`);
  return buf;
}

/**
 * Queues `data` with send() and never blocks. In repair mode on the receive queue each call
 * becomes one linear buffer, which the kernel may refuse when large (ENOMEM): halve and go on.
 */
export function sendAllNoWait(fd: number, data: Buffer, what: string): void {
  let chunk = Math.min(data.length, 64 * 1024);
  for (let off = 0; off < data.length; ) {
    const n = Math.min(chunk, data.length - off);
    const r = sysTry('sendto', [fd, data.subarray(off, off + n), n, MSG.DONTWAIT | MSG.NOSIGNAL, 0, 0]);
    if (r.ret > 0) {
      off += r.ret;
      continue;
    }
    if (r.errno === E.ENOMEM && chunk > 1024) {
      chunk >>= 1;
      continue;
    }
    throw new SysError('send', r.ret === 0 ? E.EIO : r.errno, `${what}: ${data.length - off} of ${data.length} bytes left`);
  }
}
