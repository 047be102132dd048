// A connect in progress (SYN_SENT): the handshake has not happened, so there is nothing to carry
// but the peer's address, the first sequence number and the timestamp clock. Dump: read in
// repair mode (the write sequence is one past the SYN's). Restore: a socket bound to the same
// address with the write sequence set back to the SYN's while it is still closed, connected again
// as the tasks resume (a connect outside repair mode: in it, connect would skip the handshake),
// the timestamp clock set again after that connect (which picks a new offset). A peer that had
// answered (its SYN-ACK dropped by the network lock) sees a retransmission of the same SYN, with
// timestamps that go on from the ones it saw.
import {
  AF, SOCK, SOL, SO, IPPROTO, IPV6_V6ONLY, O, F, sys, sysTry, socket, bind, encodeInetAddr, setsockoptInt, getsockoptInt,
  TCP_REPAIR_OPT, TCP_REPAIR_MODE, TCP_QUEUE, SIOC, ioctlInt, setTcpRepair, selectRepairQueue, getQueueSeq, setQueueSeq, type InetAddr,
} from '../../sys/index.js';
import { hasField } from '../../image/presence.js';
import { inet_sk_entrySchema } from '../../image/gen/sk-inet_pb.js';
import { restoreSkOpts, finishSocket } from '../files/sk-opts.js';
import type { InetSkData } from '../files/inet.js';

const EINPROGRESS = 115;

/** What a SYN_SENT socket's stream entry holds, read in repair mode. */
export function readSynSent(fd: number, what: string): { outqSeq: number; mssClamp: number; timestamp: number } {
  // Data queued before the handshake would be TCP Fast Open's: not carried, so refused.
  const outq = ioctlInt(fd, SIOC.OUTQ, `${what}: SIOCOUTQ`);
  if (outq > 0) throw new Error(`${what}: ${outq} bytes queued on a connect in progress (TCP Fast Open) — not supported`);
  selectRepairQueue(fd, TCP_QUEUE.SEND);
  const outqSeq = getQueueSeq(fd);
  selectRepairQueue(fd, TCP_QUEUE.NONE);
  return {
    outqSeq,
    mssClamp: getsockoptInt(fd, SOL.TCP, TCP_REPAIR_OPT.MAXSEG) >>> 0,
    timestamp: getsockoptInt(fd, SOL.TCP, TCP_REPAIR_OPT.TIMESTAMP) >>> 0,
  };
}

/** A closed socket bound where the connect was made from, its next SYN at the recorded sequence. */
export function createSynSent(sk: InetSkData, outqSeq: number, src: InetAddr, what: string): number {
  const fd = socket(sk.family, SOCK.STREAM, IPPROTO.TCP);
  // The image's status flags (O_NONBLOCK ...) last; closed again if anything fails.
  return finishSocket(fd, sk.flags, () => {
    setTcpRepair(fd, TCP_REPAIR_MODE.ON);
    if (sk.family === AF.INET6 && hasField(inet_sk_entrySchema, sk, 'v6only')) setsockoptInt(fd, SOL.IPV6, IPV6_V6ONLY, sk.v6only ? 1 : 0, `${what}: IPV6_V6ONLY`);
    restoreSkOpts(fd, sk.opts, what);
    bind(fd, encodeInetAddr(src), `${what}: bind`);
    // The SYN took one sequence number: connect sends the next SYN at write_seq, as it was.
    selectRepairQueue(fd, TCP_QUEUE.SEND);
    setQueueSeq(fd, (outqSeq - 1) >>> 0);
    selectRepairQueue(fd, TCP_QUEUE.NONE);
  });
}

/**
 * As the tasks resume (the network still locked: the first SYN is dropped and sent again by the
 * kernel's own timer): the connect again, never blocking, whatever the task's flags. A task
 * blocked in connect() when it was dumped restarts its call and waits for this one.
 */
export function connectAgain(fd: number, dst: InetAddr, timestamp: number | undefined, reuseaddr: boolean): void {
  setTcpRepair(fd, TCP_REPAIR_MODE.OFF_NO_WP);
  const flags = sys('fcntl', [fd, F.GETFL]);
  if (!(flags & O.NONBLOCK)) sys('fcntl', [fd, F.SETFL, flags | O.NONBLOCK]);
  const to = encodeInetAddr(dst);
  const r = sysTry('connect', [fd, to, to.length]);
  if (!(flags & O.NONBLOCK)) sys('fcntl', [fd, F.SETFL, flags]);
  if (r.ret < 0 && r.errno !== EINPROGRESS) throw new Error(`connect in progress to port ${dst.port}: connect again: errno ${r.errno}`);
  if (timestamp !== undefined) {
    setTcpRepair(fd, TCP_REPAIR_MODE.ON);
    setsockoptInt(fd, SOL.TCP, TCP_REPAIR_OPT.TIMESTAMP, timestamp | 0, 'TCP_TIMESTAMP after the connect');
    setTcpRepair(fd, TCP_REPAIR_MODE.OFF_NO_WP);
  }
  if (reuseaddr) setsockoptInt(fd, SOL.SOCKET, SO.REUSEADDR, 1, 'SO_REUSEADDR after repair mode');
}
