// IPv4 and IPv6 sockets: TCP listening (and not yet connected) sockets and UDP sockets, bound
// and connected, with their options. Everything comes from our copy of the task's socket
// (getsockname, getpeername, TCP_INFO, getsockopt). TCP connections (established or closing)
// are refused, named with both addresses, unless --tcp-established is given: then
// resources/net/tcp-dump.ts dumps them in repair mode (this module writes their inet_sk_entry).
import { dumpUdpQueue, refillUdpQueue, type DatagramRecord } from '../net/udp-queue.js';
import { addrToWords, wordsToBytes } from '../net/addr-words.js';
import { restoreMemberships, type McastRecord } from '../net/mcast.js';
import { readFileSync, readlinkSync } from 'node:fs';
import type { MessageInitShape } from '@bufbuild/protobuf';
import { inet_sk_entrySchema } from '../../image/gen/sk-inet_pb.js';
import { tcp_opts_entrySchema } from '../../image/gen/tcp-stream_pb.js';
import { hasField } from '../../image/presence.js';
import {
  AF, SOCK, SOL, SO, IPPROTO, TCP_OPT, TCP_STATE, IPV6_V6ONLY, socket, bind, listen, connect,
  getsockname, getpeername, getsockoptInt, getsockoptRaw, setsockoptInt, decodeInetAddr, encodeInetAddr, sysTry, E, type InetAddr,
} from '../../sys/index.js';
import { UserError } from '../../util/errors.js';
import { parseNetTcp } from '../../proc/net-tcp.js';
import type { BlockerCause } from '../../util/blocker.js';
import { dumpSkOpts, restoreSkOpts, finishSocket, type SkOpts } from './sk-opts.js';
import type { FownData } from './fown.js';

type TcpOpts = { nodelay?: boolean; cork?: boolean; keepcnt?: number; keepidle?: number; keepintvl?: number };
export type InetSkData = MessageInitShape<typeof inet_sk_entrySchema> & {
  id: number; ino: number; family: number; type: number; proto: number; state: number;
  srcPort: number; dstPort: number; flags: number; backlog: number; srcAddr: number[]; dstAddr: number[];
  fown: FownData; opts: SkOpts; v6only?: boolean; tcpOpts?: TcpOpts;
};

/** What the kernel tells about one inet socket. */
export interface InetInfo {
  family: number;
  type: number;
  proto: number;
  state: number;
  src: InetAddr;
  dst: InetAddr | null;
  /** Listening: the backlog limit and the connections waiting to be accepted. */
  backlog: number;
  pending: number;
}

const SHUT_RDWR = 2;

const STATE_NAME: Record<number, string> = {
  1: 'established', 2: 'syn-sent', 3: 'syn-recv', 4: 'fin-wait-1', 5: 'fin-wait-2', 6: 'time-wait',
  7: 'closed', 8: 'close-wait', 9: 'last-ack', 10: 'listening', 11: 'closing',
};

/**
 * The peer a connect in progress (SYN_SENT) is for: getpeername says ENOTCONN until the
 * handshake is done, so it comes from /proc/PID/net/tcp{,6} (PID's namespace is the socket's).
 */
function connectingTo(fd: number, family: number, pid: number): InetAddr | null {
  const m = /^socket:\[(\d+)\]$/.exec(readlinkSync(`/proc/self/fd/${fd}`));
  if (!m) return null;
  const e = parseNetTcp(readFileSync(`/proc/${pid}/net/tcp${family === AF.INET6 ? '6' : ''}`, 'utf8')).find((x) => x.inode === Number(m[1]));
  return e ? { family, port: e.remote.port, addr: e.remote.addr } : null;
}

/** `pid`: a task holding the socket (for the peer of a connect in progress). */
export function inspectInet(fd: number, family: number, pid?: number): InetInfo {
  const type = getsockoptInt(fd, SOL.SOCKET, SO.TYPE);
  const proto = getsockoptInt(fd, SOL.SOCKET, SO.PROTOCOL);
  const src = decodeInetAddr(getsockname(fd));
  const peer = getpeername(fd);
  const dst = peer ? decodeInetAddr(peer) : null;
  let state: number = dst ? TCP_STATE.ESTABLISHED : TCP_STATE.CLOSE;
  let backlog = 0;
  let pending = 0;
  if (proto === IPPROTO.TCP) {
    // struct tcp_info: state first; for a listener tcpi_unacked is the accept queue and
    // tcpi_sacked its limit.
    const info = getsockoptRaw(fd, SOL.TCP, TCP_OPT.INFO, 104);
    state = info.readUInt8(0);
    if (state === TCP_STATE.LISTEN) {
      pending = info.readUInt32LE(24);
      backlog = info.readUInt32LE(28);
    }
    if (state === TCP_STATE.SYN_SENT && !dst && pid !== undefined) {
      const to = connectingTo(fd, family, pid);
      if (to) return { family, type, proto, state, src, dst: to, backlog, pending };
    }
  }
  return { family, type, proto, state, src, dst, backlog, pending };
}

function formatAddr(a: InetAddr): string {
  if (a.family === AF.INET) return `${[...a.addr].join('.')}:${a.port}`;
  const words = Array.from({ length: 8 }, (_, i) => a.addr.readUInt16BE(i * 2));
  // The longest run of zero words becomes "::".
  let best = [-1, 0];
  for (let i = 0; i < 8; ) {
    let j = i;
    while (j < 8 && words[j] === 0) j++;
    if (j - i > best[1]!) best = [i, j - i];
    i = j === i ? i + 1 : j;
  }
  const hex = words.map((w) => w.toString(16));
  const text = best[1]! > 1 ? `${hex.slice(0, best[0]).join(':')}::${hex.slice(best[0]! + best[1]!).join(':')}` : hex.join(':');
  return `[${text}]:${a.port}`;
}

/** Protocol names for the sockets cryo refuses (IANA numbers, IPPROTO_*). */
const PROTO_NAME: Record<number, string> = { 1: 'ICMP', 2: 'IGMP', 6: 'TCP', 17: 'UDP', 58: 'ICMPv6', 132: 'SCTP', 136: 'UDP-Lite', 255: 'raw IP', 262: 'MPTCP' };
const TYPE_NAME: Record<number, string> = { 1: 'stream', 2: 'datagram', 3: 'raw', 5: 'seqpacket' };

function isAny(a: InetAddr): boolean {
  return a.port === 0 && a.addr.every((b) => b === 0);
}

/** "TCPv4 socket 127.0.0.1:80 -> 127.0.0.1:5000 established"; others by type and protocol. */
export function describeInet(i: InetInfo): string {
  const v = i.family === AF.INET6 ? 'v6' : 'v4';
  const tcp = i.proto === IPPROTO.TCP && i.type === SOCK.STREAM;
  if (tcp || (i.proto === IPPROTO.UDP && i.type === SOCK.DGRAM)) {
    const where = i.dst ? `${formatAddr(i.src)} -> ${formatAddr(i.dst)}` : formatAddr(i.src);
    // A UDP socket has no connection state: only connected or not (the arrow says which).
    return `${tcp ? 'TCP' : 'UDP'}${v} socket ${where}${tcp ? ` ${STATE_NAME[i.state] ?? `state ${i.state}`}` : ''}`;
  }
  // A raw socket's "port" is its protocol number, and TCP's states mean nothing here.
  const host = (a: InetAddr) => (i.type === SOCK.RAW ? formatAddr({ ...a, port: 0 }).replace(/:0$/, '') : formatAddr(a));
  const bound = isAny(i.src) || (i.type === SOCK.RAW && i.src.addr.every((b) => b === 0)) ? '' : `, bound to ${host(i.src)}`;
  const peer = i.dst ? `, connected to ${host(i.dst)}` : '';
  const proto = PROTO_NAME[i.proto] ?? `number ${i.proto}`;
  return `${TYPE_NAME[i.type] ?? `type ${i.type}`} IP${v} socket (protocol ${proto})${bound}${peer}`;
}

/**
 * States of a TCP connection that TCP repair dumps and recreates (resources/net/tcp-repair.ts):
 * established, closing with an fd still open (FIN_WAIT1/2, CLOSE_WAIT, LAST_ACK, CLOSING), and
 * a connect in progress (SYN_SENT: the same first sequence number, connected again on resume).
 */
const CONNECTION_STATES = new Set<number>([
  TCP_STATE.ESTABLISHED, TCP_STATE.SYN_SENT, TCP_STATE.FIN_WAIT1, TCP_STATE.FIN_WAIT2, TCP_STATE.CLOSE_WAIT, TCP_STATE.LAST_ACK, TCP_STATE.CLOSING,
]);

/** A TCP socket with a connection that --tcp-established dumps. */
export function isTcpConnection(i: Pick<InetInfo, 'proto' | 'type' | 'state'>): boolean {
  return i.proto === IPPROTO.TCP && i.type === SOCK.STREAM && CONNECTION_STATES.has(i.state);
}

/**
 * What the user allows for the tree's TCP connections: dump them in TCP repair mode
 * (--tcp-established), or as closed sockets (--tcp-close; it wins when both are given, as in
 * CRIU: no repair mode, no network lock, the connection is let go).
 */
export interface TcpPolicy {
  tcpEstablished: boolean;
  tcpClose: boolean;
  /** --skip-in-flight (CRIU's): a listener's connections not yet accepted are dropped, not refused. */
  skipInFlight: boolean;
}

/** Why the socket cannot be dumped under `tcp` (null if it can). */
export function inetBlocker(i: InetInfo, tcp: TcpPolicy): BlockerCause | null {
  const refuse = (reason: string, hint?: string): BlockerCause => (hint ? { kind: 'socket', reason, hint } : { kind: 'socket', reason });
  if (!(i.proto === IPPROTO.TCP && i.type === SOCK.STREAM) && !(i.proto === IPPROTO.UDP && i.type === SOCK.DGRAM)) {
    return refuse(`${describeInet(i)} — not supported`);
  }
  if (isTcpConnection(i) && tcp.tcpClose) return null; // restored closed: neither peer nor queues matter
  if (isTcpConnection(i) && !i.dst) return refuse(`${describeInet(i)}: a connect in progress whose peer cannot be found`, '--tcp-close restores it closed');
  if (isTcpConnection(i)) {
    return tcp.tcpEstablished ? null : refuse(`${describeInet(i)}: a TCP connection`, '--tcp-established checkpoints it, --tcp-close restores it closed');
  }
  if (i.proto === IPPROTO.TCP && i.state !== TCP_STATE.LISTEN && i.state !== TCP_STATE.CLOSE) {
    return refuse(`${describeInet(i)}: TCP sockets in this state — not supported yet`);
  }
  // The kernel has no call that puts a connection into a listener's accept queue: taken out of
  // it (accept) to be dumped, it could not go back there at restore, nor after a failed dump.
  // With --skip-in-flight they are let go, as CRIU does: the listener comes back with an empty
  // queue, and each client finds its connection reset and connects again.
  if (i.pending && !tcp.skipInFlight) {
    return refuse(
      `${describeInet(i)}: ${i.pending} connection(s) waiting in its accept queue — cannot be restored (no kernel call puts a connection back into an accept queue)`,
      'let the program accept them before the dump, or --skip-in-flight drops them (their clients are reset)',
    );
  }
  return null;
}

/** An address as CRIU stores it (addr-words.ts). */
function addrWords(a: InetAddr | null): number[] {
  return a ? addrToWords(a.addr) : [];
}

function wordsAddr(family: number, words: number[], port: number): InetAddr {
  return { family, port, addr: wordsToBytes(words, family === AF.INET ? 4 : 16) };
}

/** The image entry of one socket, from our copy `fd` of it. */
export function dumpInetSk(fd: number, i: InetInfo, id: number, ino: number, flags: number, fown: FownData): { entry: InetSkData; warning?: string } {
  const entry: InetSkData = {
    id, ino, family: i.family, type: i.type, proto: i.proto, state: i.state,
    srcPort: i.src.port, dstPort: i.dst?.port ?? 0, flags, backlog: i.backlog,
    srcAddr: addrWords(i.src), dstAddr: addrWords(i.dst), fown, opts: dumpSkOpts(fd),
  };
  if (i.family === AF.INET6) entry.v6only = getsockoptInt(fd, SOL.IPV6, IPV6_V6ONLY) !== 0;
  if (i.proto === IPPROTO.TCP) {
    entry.tcpOpts = {
      nodelay: getsockoptInt(fd, SOL.TCP, TCP_OPT.NODELAY) !== 0,
      cork: getsockoptInt(fd, SOL.TCP, TCP_OPT.CORK) !== 0,
      keepcnt: getsockoptInt(fd, SOL.TCP, TCP_OPT.KEEPCNT),
      keepidle: getsockoptInt(fd, SOL.TCP, TCP_OPT.KEEPIDLE),
      keepintvl: getsockoptInt(fd, SOL.TCP, TCP_OPT.KEEPINTVL),
    };
  }
  if (i.proto === IPPROTO.UDP) {
    const queue = dumpUdpQueue(fd);
    if (queue.length) entry.cryoRcvQueue = queue;
  }
  return { entry };
}

/**
 * A new socket as the entry describes it, in the restorer: bound, listening or connected. An
 * entry in a connection's state reaches here only without its tcp-stream image, that is with
 * --tcp-close (tcp-restore.ts makes the others): it comes back as a TCP socket of the same
 * family and options that is shut down both ways and bound nowhere, what CRIU's --tcp-close
 * gives too. To the program it is a connection the peer closed: read() returns 0 (end of
 * file), write() fails with EPIPE (and SIGPIPE), poll() reports POLLIN|POLLOUT|POLLHUP|POLLRDHUP
 * at once, so an event loop wakes and finds it over; getpeername() says ENOTCONN. Not a reset
 * (ECONNRESET): only a RST from a peer sets that error, and nothing needs to be sent or locked
 * for a socket nobody can reach. Not bound to its old address: an accepted connection shares
 * its port with the listener, and no packet is ever meant to arrive for it.
 */
export function restoreInetSk(e: InetSkData): number {
  const src = wordsAddr(e.family, e.srcAddr, e.srcPort);
  const info: InetInfo = {
    family: e.family, type: e.type, proto: e.proto, state: e.state, src,
    dst: e.dstAddr.length ? wordsAddr(e.family, e.dstAddr, e.dstPort) : null, backlog: e.backlog, pending: 0,
  };
  const closed = isTcpConnection(e);
  const what = describeInet(info) + (closed ? ' (restored closed: --tcp-close)' : '');
  const fd = socket(e.family, e.type, e.proto);
  return finishSocket(fd, e.flags, () => {
    if (e.family === AF.INET6 && hasField(inet_sk_entrySchema, e, 'v6only')) setsockoptInt(fd, SOL.IPV6, IPV6_V6ONLY, e.v6only ? 1 : 0, `${what}: IPV6_V6ONLY`);
    restoreSkOpts(fd, e.opts, what);
    const t = e.tcpOpts;
    if (t && hasField(inet_sk_entrySchema, e, 'tcpOpts')) {
      const setIf = (opt: number, field: 'nodelay' | 'cork' | 'keepcnt' | 'keepidle' | 'keepintvl') => {
        if (!hasField(tcp_opts_entrySchema, t, field)) return;
        const v = Number(t[field]);
        if (getsockoptInt(fd, SOL.TCP, opt) !== v) setsockoptInt(fd, SOL.TCP, opt, v, what);
      };
      setIf(TCP_OPT.NODELAY, 'nodelay');
      setIf(TCP_OPT.CORK, 'cork');
      setIf(TCP_OPT.KEEPCNT, 'keepcnt');
      setIf(TCP_OPT.KEEPIDLE, 'keepidle');
      setIf(TCP_OPT.KEEPINTVL, 'keepintvl');
    }
    if (closed) {
      setsockoptInt(fd, SOL.SOCKET, SO.REUSEADDR, e.opts.reuseaddr ? 1 : 0);
      // On a socket never connected the kernel answers ENOTCONN but sets both shutdown bits.
      const r = sysTry('shutdown', [fd, SHUT_RDWR]);
      if (r.ret < 0 && r.errno !== E.ENOTCONN) throw new Error(`${what}: shutdown: errno ${r.errno}`);
      return;
    }
    // The old owner's connections may linger in TIME_WAIT on this port: bind as if reuse were on.
    setsockoptInt(fd, SOL.SOCKET, SO.REUSEADDR, 1);
    if (src.port || src.addr.some((b) => b !== 0)) {
      try {
        bind(fd, encodeInetAddr(src), what);
      } catch (err) {
        throw new UserError(`cannot restore ${what}: ${(err as Error).message}`);
      }
    }
    setsockoptInt(fd, SOL.SOCKET, SO.REUSEADDR, e.opts.reuseaddr ? 1 : 0);
    if (e.cryoMcast?.length) restoreMemberships(fd, e.family, e.cryoMcast as McastRecord[], what);
    if (e.state === TCP_STATE.LISTEN) listen(fd, e.backlog, what);
    if (e.proto === IPPROTO.UDP && info.dst) connect(fd, encodeInetAddr(info.dst), what);
    if (e.proto === IPPROTO.UDP && e.cryoRcvQueue?.length) refillUdpQueue(fd, e.cryoRcvQueue as DatagramRecord[], what);
  });
}
