// Established TCP connections through TCP repair mode (the technique of CRIU's soccr; the code
// is cryo's own). Dump: with the network locked, our copy of the task's socket is switched to
// repair mode, which freezes the connection's state (no packet goes out, none is answered), and
// everything the kernel keeps is read: sequence numbers, both queues' bytes, the options
// negotiated at the handshake, the timestamp clock, the windows. The socket stays in repair mode
// until the dump ends: releaseRepair() puts a left-running (or failed) dump's socket back.
// Restore: createTcpConnection() builds a socket that is that connection, still in repair mode;
// leaveRepair() lets it run as the tasks resume.
import { create, type MessageInitShape } from '@bufbuild/protobuf';
import { inet_sk_entrySchema } from '../../image/gen/sk-inet_pb.js';
import { tcp_stream_entrySchema, tcp_opts_entrySchema, type tcp_stream_entry } from '../../image/gen/tcp-stream_pb.js';
import { encodeImage, decodeImage } from '../../image/io.js';
import { hasField } from '../../image/presence.js';
import {
  AF, SOCK, SOL, SO, IPPROTO, TCP_OPT, TCP_STATE, IPV6_V6ONLY, O, sysTry, socket, bind, connect, shutdown,
  getsockoptInt, setsockoptInt, encodeInetAddr, type InetAddr,
  TCP_REPAIR_OPT, TCP_REPAIR_MODE, TCP_QUEUE, TCPOPT, TCPI_OPT, SIOC, tcpInfoHead, ioctlInt,
  setTcpRepair, trySetTcpRepair, tcpRepairOn, selectRepairQueue, getQueueSeq, setQueueSeq,
  setRepairOptions, getRepairWindow, setRepairWindow, peekRepairQueue, sendAllNoWait,
} from '../../sys/index.js';
import { inspectInet, dumpInetSk, describeInet, type InetSkData, type InetInfo } from '../files/inet.js';
import { readSynSent, createSynSent, connectAgain } from './synsent.js';
import { restoreSkOpts, finishSocket } from '../files/sk-opts.js';
import type { FownData } from '../files/fown.js';
import { replayPeerFin } from './tcp-fin.js';
import { wordsToBytes } from './addr-words.js';

export type TcpStreamData = MessageInitShape<typeof tcp_stream_entrySchema> & {
  inqLen: number; inqSeq: number; outqLen: number; outqSeq: number; optMask: number; sndWscale: number; mssClamp: number;
};

/** One connection as the images hold it: its inet_sk_entry, its tcp_stream_entry and the queue bytes. */
export interface TcpConnectionRecord {
  sk: InetSkData;
  stream: TcpStreamData;
  /** Received, not read by the task yet (inq_len bytes). */
  inq: Buffer;
  /** Written by the task, not acknowledged by the peer (outq_len bytes; the last unsq_len never sent). */
  outq: Buffer;
}

/** The ids the file table gives the socket; the defaults suit a socket taken out of any table. */
export interface TcpSkIds {
  id?: number;
  ino?: number;
  /** open flags (O_NONBLOCK, ...) */
  flags?: number;
  fown?: FownData;
}

/**
 * States dumpTcpConnection handles: a connect in progress (SYN_SENT, synsent.ts), established, and half-closed by this side (our FIN sent,
 * acknowledged or not), closed by the peer (CLOSE_WAIT: its FIN is replayed, tcp-fin.ts), and
 * both (LAST_ACK, CLOSING).
 */
const DUMPABLE = new Set<number>([
  TCP_STATE.SYN_SENT, TCP_STATE.ESTABLISHED, TCP_STATE.FIN_WAIT1, TCP_STATE.FIN_WAIT2, TCP_STATE.CLOSE_WAIT, TCP_STATE.LAST_ACK, TCP_STATE.CLOSING,
]);
/** States in which the peer's FIN has arrived: it took one sequence number after the data. */
const FIN_RCVD = new Set<number>([TCP_STATE.CLOSE_WAIT, TCP_STATE.CLOSING, TCP_STATE.LAST_ACK]);
/** States in which this side has sent its FIN: the FIN takes one sequence number after the data. */
const FIN_SENT = new Set<number>([TCP_STATE.FIN_WAIT1, TCP_STATE.FIN_WAIT2, TCP_STATE.CLOSING, TCP_STATE.LAST_ACK]);

/**
 * Dumps the connection `fd` is a socket of (our copy, from pidfd_getfd). The network must be
 * locked for it first (netlock.ts): a packet that arrives between reading the queues would be
 * lost from the image. Leaves the socket in repair mode on success (the caller calls
 * releaseRepair() unless the task is killed); on failure puts it back as it was and throws.
 */
export function dumpTcpConnection(fd: number, family: number, ids: TcpSkIds = {}, seen?: InetInfo): TcpConnectionRecord {
  // `seen`: the caller's inspection, which knows the task (the peer of a SYN_SENT socket).
  const info = seen ?? inspectInet(fd, family);
  if (!info.dst) throw new Error(`${describeInet(info)}: no peer address`);
  const what = describeInet(info);
  if (info.proto !== IPPROTO.TCP || info.type !== SOCK.STREAM) throw new Error(`${what}: not a TCP stream socket`);
  if (!DUMPABLE.has(info.state)) throw new Error(`${what}: TIME_WAIT, SYN and closed sockets are not dumped as connections`);
  const { entry: sk } = dumpInetSk(fd, info, ids.id ?? 0, ids.ino ?? 0, ids.flags ?? O.RDWR, ids.fown ?? { uid: 0, euid: 0, signum: 0, pidType: 0, pid: 0 });
  const read = info.state === TCP_STATE.SYN_SENT ? () => synSentState(fd, what) : () => readRepairState(fd, what, info.state);
  return { sk, ...inRepair(fd, read) };
}

/**
 * Runs `read` with the socket in repair mode and leaves it there when `read` returns; when it
 * throws, a socket that was not in repair mode before is taken out again (the connection goes on
 * as if never touched) and the error goes on.
 */
export function inRepair<T>(fd: number, read: () => T): T {
  const wasOn = tcpRepairOn(fd);
  const reuse = getsockoptInt(fd, SOL.SOCKET, SO.REUSEADDR) !== 0;
  setTcpRepair(fd, TCP_REPAIR_MODE.ON);
  try {
    return read();
  } catch (e) {
    if (!wasOn) releaseRepair(fd, reuse);
    throw e;
  }
}

/** A connect in progress: no queues, no options negotiated yet (synsent.ts). */
function synSentState(fd: number, what: string): { stream: TcpStreamData; inq: Buffer; outq: Buffer } {
  const r = readSynSent(fd, what);
  const stream: TcpStreamData = { inqLen: 0, inqSeq: 0, outqLen: 0, outqSeq: r.outqSeq, unsqLen: 0, optMask: 0, sndWscale: 0, mssClamp: r.mssClamp, timestamp: r.timestamp };
  return { stream, inq: Buffer.alloc(0), outq: Buffer.alloc(0) };
}

function readRepairState(fd: number, what: string, expectState: number): { stream: TcpStreamData; inq: Buffer; outq: Buffer } {
  // The state again, now that repair mode holds it still: a FIN may have come in meanwhile.
  const ti = tcpInfoHead(fd);
  if (ti.state !== expectState) throw new Error(`${what}: state changed to ${ti.state} while dumping`);
  const inqLen = ioctlInt(fd, SIOC.INQ, `${what}: SIOCINQ`);
  let outqLen = ioctlInt(fd, SIOC.OUTQ, `${what}: SIOCOUTQ`);
  let unsqLen = ioctlInt(fd, SIOC.OUTQNSD, `${what}: SIOCOUTQNSD`);
  selectRepairQueue(fd, TCP_QUEUE.RECV);
  // The peer's FIN off the sequence as well (SIOCINQ never counts it): restore replays it.
  const inqSeq = (getQueueSeq(fd) - (FIN_RCVD.has(ti.state) ? 1 : 0)) >>> 0;
  const inq = peekRepairQueue(fd, inqLen, `${what}: receive queue`);
  selectRepairQueue(fd, TCP_QUEUE.SEND);
  let outqSeq = getQueueSeq(fd);
  if (FIN_SENT.has(ti.state)) {
    // The image holds data only (as CRIU's): our FIN comes off the sequence and, while it is
    // not acknowledged (FIN_WAIT1), off the queue lengths; restore sends it again.
    outqSeq = (outqSeq - 1) >>> 0;
    if (ti.state !== TCP_STATE.FIN_WAIT2) {
      outqLen -= 1;
      if (unsqLen > 0) unsqLen -= 1;
    }
  }
  const outq = peekRepairQueue(fd, outqLen, `${what}: send queue`);
  selectRepairQueue(fd, TCP_QUEUE.NONE);
  const w = getRepairWindow(fd);
  const stream: TcpStreamData = {
    inqLen, inqSeq, outqLen, outqSeq, unsqLen,
    optMask: ti.options,
    sndWscale: ti.options & TCPI_OPT.WSCALE ? ti.sndWscale : 0,
    // In repair mode TCP_MAXSEG reads the clamp negotiated at the handshake, not the current mss.
    mssClamp: getsockoptInt(fd, SOL.TCP, TCP_REPAIR_OPT.MAXSEG) >>> 0,
    timestamp: getsockoptInt(fd, SOL.TCP, TCP_REPAIR_OPT.TIMESTAMP) >>> 0,
    cork: getsockoptInt(fd, SOL.TCP, TCP_OPT.CORK) !== 0,
    nodelay: getsockoptInt(fd, SOL.TCP, TCP_OPT.NODELAY) !== 0,
    sndWl1: w.sndWl1, sndWnd: w.sndWnd, maxWindow: w.maxWindow, rcvWnd: w.rcvWnd, rcvWup: w.rcvWup,
  };
  if (ti.options & TCPI_OPT.WSCALE) stream.rcvWscale = ti.rcvWscale;
  return { stream, inq, outq };
}

/**
 * Takes a dumped (or half-dumped) socket out of repair mode so the connection goes on where it
 * stood: for --leave-running and every failure path of a dump. Repair mode forces address reuse
 * on and leaving it clears it, so the task's own SO_REUSEADDR (read before the dump: the
 * record's sk.opts.reuseaddr) is put back. Returns the errno (0 when done). Never throws: it
 * runs on cleanup paths that must reach every socket.
 */
export function releaseRepair(fd: number, reuseaddr: boolean): number {
  const errno = trySetTcpRepair(fd, TCP_REPAIR_MODE.OFF);
  if (errno === 0 && reuseaddr) {
    const one = Buffer.alloc(4);
    one.writeInt32LE(1);
    return sysTry('setsockopt', [fd, SOL.SOCKET, SO.REUSEADDR, one, 4]).errno;
  }
  return errno;
}

/**
 * The restored socket leaves repair mode as its task resumes: from here the kernel runs the
 * connection again (TCP_REPAIR_OFF sends a window probe, so the peer learns our window at once).
 * Then SO_REUSEADDR as recorded (leaving repair mode clears it).
 */
export function leaveRepair(fd: number, rec: TcpConnectionRecord): void {
  if (rec.sk.state === TCP_STATE.SYN_SENT) {
    const ts = hasField(tcp_stream_entrySchema, rec.stream, 'timestamp') ? rec.stream.timestamp ?? 0 : undefined;
    return connectAgain(fd, recordEnds(rec.sk).dst, ts, rec.sk.opts.reuseaddr ?? false);
  }
  setTcpRepair(fd, TCP_REPAIR_MODE.OFF);
  if (rec.sk.opts.reuseaddr) setsockoptInt(fd, SOL.SOCKET, SO.REUSEADDR, 1, 'SO_REUSEADDR after repair mode');
}

function wordsToAddr(family: number, words: readonly number[], port: number): InetAddr {
  const size = family === AF.INET ? 4 : 16;
  if (words.length * 4 !== size) throw new Error(`an address of ${words.length} words for family ${family}`);
  return { family, port, addr: wordsToBytes(words, size) };
}

/** Both ends of a recorded connection. */
export function recordEnds(sk: InetSkData): { src: InetAddr; dst: InetAddr } {
  return { src: wordsToAddr(sk.family, sk.srcAddr, sk.srcPort), dst: wordsToAddr(sk.family, sk.dstAddr, sk.dstPort) };
}

/**
 * A new socket that is the recorded connection, in repair mode (nothing goes out yet). The
 * original must be gone from this network namespace: the same 4-tuple cannot be connected twice.
 * On failure the half-built socket is closed, silently since it is in repair mode.
 */
export function createTcpConnection(rec: TcpConnectionRecord): number {
  const { sk, stream: s } = rec;
  const { src, dst } = recordEnds(sk);
  const what = `TCP connection ${describeInet({ family: sk.family, type: sk.type, proto: sk.proto, state: sk.state, src, dst, backlog: 0, pending: 0 })}`;
  if (rec.inq.length !== s.inqLen || rec.outq.length !== s.outqLen) throw new Error(`${what}: queue bytes do not match the record's lengths`);
  const has = (f: string) => hasField(tcp_stream_entrySchema, s, f);
  const unsent = has('unsqLen') ? s.unsqLen ?? 0 : 0;
  if (unsent > s.outqLen) throw new Error(`${what}: ${unsent} unsent bytes in a ${s.outqLen}-byte send queue`);
  if (sk.state === TCP_STATE.SYN_SENT) return createSynSent(sk, s.outqSeq, src, what);
  const fd = socket(sk.family, SOCK.STREAM, IPPROTO.TCP);
  // The image's status flags (O_NONBLOCK ...) last; closed again if anything fails.
  return finishSocket(fd, sk.flags, () => {
    setTcpRepair(fd, TCP_REPAIR_MODE.ON);
    if (sk.family === AF.INET6 && hasField(inet_sk_entrySchema, sk, 'v6only')) setsockoptInt(fd, SOL.IPV6, IPV6_V6ONLY, sk.v6only ? 1 : 0, `${what}: IPV6_V6ONLY`);
    // Buffers before the queues: a receive queue larger than a fresh socket's buffer must fit.
    restoreSkOpts(fd, sk.opts, what);
    // Sequence numbers where the queues start; refilling them moves each to where it stood.
    selectRepairQueue(fd, TCP_QUEUE.SEND);
    setQueueSeq(fd, (s.outqSeq - s.outqLen) >>> 0);
    selectRepairQueue(fd, TCP_QUEUE.RECV);
    setQueueSeq(fd, (s.inqSeq - s.inqLen) >>> 0);
    // Repair mode forces address reuse for the bind; connect goes straight to ESTABLISHED.
    bind(fd, encodeInetAddr(src), `${what}: bind`);
    connect(fd, encodeInetAddr(dst), `${what}: connect in repair mode`);
    // Handshake options before any data: the kernel refuses them (EPERM) once bytes were sent.
    setRepairOptions(fd, handshakeOptions(s));
    if (has('timestamp')) setsockoptInt(fd, SOL.TCP, TCP_REPAIR_OPT.TIMESTAMP, (s.timestamp ?? 0) | 0, `${what}: TCP_TIMESTAMP`);
    refillQueues(fd, rec, unsent, what);
    // Before the windows: the recorded ones already count the FINs' sequence numbers.
    restoreFins(fd, rec, src, dst, what);
    if (has('sndWl1') && has('sndWnd') && has('maxWindow') && has('rcvWnd') && has('rcvWup')) {
      setRepairWindow(fd, { sndWl1: s.sndWl1!, sndWnd: s.sndWnd!, maxWindow: s.maxWindow!, rcvWnd: s.rcvWnd!, rcvWup: s.rcvWup! });
    }
    restoreTcpOpts(fd, rec, what);
  });
}

/**
 * The FINs of a closing connection, in the order they happened: LAST_ACK is a close after the
 * peer's FIN, CLOSING a FIN from each side crossing. Ours is queued after the data and counted
 * as sent (repair mode, send queue): the retransmission the peer gets is a duplicate it
 * acknowledges. The peer's is replayed as a packet (tcp-fin.ts).
 */
function restoreFins(fd: number, rec: TcpConnectionRecord, src: InetAddr, dst: InetAddr, what: string): void {
  const { sk, stream: s } = rec;
  const ours = () => {
    selectRepairQueue(fd, TCP_QUEUE.SEND);
    shutdown(fd, 1, `${what}: shutdown(SHUT_WR) in repair mode`);
    selectRepairQueue(fd, TCP_QUEUE.NONE);
  };
  const theirs = () => replayPeerFin(dst, src, s.inqSeq, (s.outqSeq - s.outqLen) >>> 0, (s.sndWnd ?? 0xffff) >>> s.sndWscale);
  const peerFirst = sk.state === TCP_STATE.LAST_ACK;
  if (FIN_RCVD.has(sk.state) && peerFirst) theirs();
  if (FIN_SENT.has(sk.state)) ours();
  if (FIN_RCVD.has(sk.state) && !peerFirst) theirs();
  const now = tcpInfoHead(fd).state;
  // FIN_WAIT2 comes back as FIN_WAIT1 until the peer acknowledges our FIN again.
  const want = sk.state === TCP_STATE.FIN_WAIT2 ? TCP_STATE.FIN_WAIT1 : sk.state;
  if (now !== want) throw new Error(`${what}: state ${now} after restoring its FINs, not ${want}`);
}

function handshakeOptions(s: TcpStreamData): Array<[number, number]> {
  const opts: Array<[number, number]> = [[TCPOPT.MAXSEG, s.mssClamp]];
  if (s.optMask & TCPI_OPT.WSCALE) opts.push([TCPOPT.WINDOW, s.sndWscale | ((s.rcvWscale ?? 0) << 16)]);
  if (s.optMask & TCPI_OPT.SACK) opts.push([TCPOPT.SACK_PERM, 0]);
  if (s.optMask & TCPI_OPT.TIMESTAMPS) opts.push([TCPOPT.TIMESTAMP, 0]);
  return opts;
}

function refillQueues(fd: number, rec: TcpConnectionRecord, unsent: number, what: string): void {
  // The send queue is charged by its buffers' size, not its bytes: re-queued in other segments
  // the same bytes may not fit the recorded SO_SNDBUF (EAGAIN). Room for them, then the
  // recorded size again (the kernel keeps queued bytes above it; the task waits as it did).
  const sndbuf = getsockoptInt(fd, SOL.SOCKET, SO.SNDBUF);
  const roomy = rec.outq.length > 0 && sndbuf < 4 * rec.outq.length;
  if (roomy) setsockoptInt(fd, SOL.SOCKET, SO.SNDBUFFORCE, 2 * rec.outq.length + (1 << 20), `${what}: room for the send queue`);
  fillQueues(fd, rec, unsent, what);
  if (roomy) setsockoptInt(fd, SOL.SOCKET, SO.SNDBUFFORCE, sndbuf / 2, `${what}: SO_SNDBUF back to ${sndbuf}`);
}

function fillQueues(fd: number, rec: TcpConnectionRecord, unsent: number, what: string): void {
  selectRepairQueue(fd, TCP_QUEUE.RECV);
  sendAllNoWait(fd, rec.inq, `${what}: refilling the receive queue`);
  // What was sent once goes back in repair mode: the kernel counts it as in flight, to be
  // acknowledged or retransmitted, and sends nothing now.
  const sent = rec.outq.length - unsent;
  selectRepairQueue(fd, TCP_QUEUE.SEND);
  sendAllNoWait(fd, rec.outq.subarray(0, sent), `${what}: refilling the send queue`);
  selectRepairQueue(fd, TCP_QUEUE.NONE);
  if (unsent > 0) {
    // What was never sent is written as a task would; NO_WP: no window probe for this moment.
    setTcpRepair(fd, TCP_REPAIR_MODE.OFF_NO_WP);
    try {
      sendAllNoWait(fd, rec.outq.subarray(sent), `${what}: queueing unsent bytes`);
    } finally {
      setTcpRepair(fd, TCP_REPAIR_MODE.ON);
    }
  }
}

/** TCP-level options: the tcp_opts of a newer image, else the stream's cork/nodelay and sk_opts' keepalive. */
function restoreTcpOpts(fd: number, rec: TcpConnectionRecord, what: string): void {
  const { sk, stream: s } = rec;
  const want = new Map<number, number>();
  const o = sk.opts;
  if (o.soKeepalive) {
    if (o.tcpKeepcnt) want.set(TCP_OPT.KEEPCNT, o.tcpKeepcnt);
    if (o.tcpKeepidle) want.set(TCP_OPT.KEEPIDLE, o.tcpKeepidle);
    if (o.tcpKeepintvl) want.set(TCP_OPT.KEEPINTVL, o.tcpKeepintvl);
  }
  if (hasField(tcp_stream_entrySchema, s, 'nodelay')) want.set(TCP_OPT.NODELAY, s.nodelay ? 1 : 0);
  if (hasField(tcp_stream_entrySchema, s, 'cork')) want.set(TCP_OPT.CORK, s.cork ? 1 : 0);
  const t = sk.tcpOpts;
  if (t && hasField(inet_sk_entrySchema, sk, 'tcpOpts')) {
    const fields = [['keepcnt', TCP_OPT.KEEPCNT], ['keepidle', TCP_OPT.KEEPIDLE], ['keepintvl', TCP_OPT.KEEPINTVL], ['nodelay', TCP_OPT.NODELAY], ['cork', TCP_OPT.CORK]] as const;
    for (const [f, opt] of fields) if (hasField(tcp_opts_entrySchema, t, f)) want.set(opt, Number(t[f]));
  }
  for (const [opt, v] of want) if (getsockoptInt(fd, SOL.TCP, opt) !== v) setsockoptInt(fd, SOL.TCP, opt, v, `${what}: TCP option ${opt}`);
  if (o.soKeepalive && getsockoptInt(fd, SOL.SOCKET, SO.KEEPALIVE) !== 1) setsockoptInt(fd, SOL.SOCKET, SO.KEEPALIVE, 1, `${what}: SO_KEEPALIVE`);
}

/** CRIU's name of a connection's image: tcp-stream-%x.img of the socket's inode. */
export function tcpStreamImageName(ino: number): string {
  return `tcp-stream-${(ino >>> 0).toString(16)}.img`;
}

/** tcp-stream-INO.img (CRIU's TCP_STREAM image): the entry, then the receive queue, then the send queue. */
export function encodeTcpStreamImage(rec: TcpConnectionRecord): Buffer {
  const msg = create(tcp_stream_entrySchema, rec.stream);
  return encodeImage('TCP_STREAM', [{ msg, payload: Buffer.concat([rec.inq, rec.outq]) }], tcpStreamImageName(rec.sk.ino));
}

/** The stream part of a record from a TCP_STREAM image (CRIU's or cryo's). */
export function decodeTcpStreamImage(buf: Uint8Array, fileName?: string): { stream: tcp_stream_entry; inq: Buffer; outq: Buffer } {
  const img = decodeImage(buf, fileName);
  const e = img.entries[0];
  if (img.kind.name !== 'TCP_STREAM' || img.entries.length !== 1 || !e) throw new Error(`${fileName ?? 'image'}: not one tcp_stream_entry`);
  const stream = e.msg as tcp_stream_entry;
  const p = Buffer.from(e.payload ?? Buffer.alloc(0));
  return { stream, inq: p.subarray(0, stream.inqLen), outq: p.subarray(stream.inqLen, stream.inqLen + stream.outqLen) };
}
