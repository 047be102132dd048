// POSIX message queues through their system calls (glibc's mq_* wrappers strip the leading
// slash of the name and pass the rest to these).
import { sys, sysTry } from './libc.js';
import { E, SysError } from './errno.js';

export interface MqAttr {
  flags: number;
  maxmsg: bigint;
  msgsize: bigint;
  curmsgs: bigint;
}

/** The queue's attributes (mq_getattr). */
export function mqGetattr(fd: number, detail?: string): MqAttr {
  const old = Buffer.alloc(64); // struct mq_attr: four longs and four reserved
  sys('mq_getsetattr', [fd, 0, old], detail);
  return { flags: Number(old.readBigInt64LE(0)), maxmsg: old.readBigInt64LE(8), msgsize: old.readBigInt64LE(16), curmsgs: old.readBigInt64LE(24) };
}

/** A zero absolute timeout: the calls return at once instead of waiting, whatever O_NONBLOCK says. */
const NOW = Buffer.alloc(16);

/** The queue's next message (highest priority, oldest first), or null when it is empty; never waits. */
export function mqReceiveNow(fd: number, msgsize: number, detail?: string): { prio: number; data: Buffer } | null {
  const buf = Buffer.alloc(Math.max(1, msgsize));
  const prio = Buffer.alloc(4);
  const r = sysTry('mq_timedreceive', [fd, buf, buf.length, prio, NOW]);
  if (r.ret < 0) {
    if (r.errno === E.EAGAIN || r.errno === E.ETIMEDOUT) return null;
    throw new SysError('mq_timedreceive', r.errno, detail);
  }
  return { prio: prio.readUInt32LE(0), data: buf.subarray(0, r.ret) };
}

/** Queues one message; never waits (throws EAGAIN/ETIMEDOUT on a full queue). */
export function mqSendNow(fd: number, data: Buffer, prio: number, detail?: string): void {
  sys('mq_timedsend', [fd, data.length ? data : Buffer.alloc(1), data.length, prio, NOW], detail);
}

function bareName(name: string): Buffer {
  return Buffer.from(name.replace(/^\//, '') + '\0');
}

/** mq_open: `attr` with O_CREAT (maxmsg and msgsize). */
export function mqOpen(name: string, flags: number, mode = 0, attr?: { maxmsg: bigint; msgsize: bigint }): number {
  let a: Buffer | number = 0;
  if (attr) {
    a = Buffer.alloc(64);
    a.writeBigInt64LE(attr.maxmsg, 8);
    a.writeBigInt64LE(attr.msgsize, 16);
  }
  return sys('mq_open', [bareName(name), flags, mode, a], `message queue ${name}`);
}

/** mq_unlink; the errno (0 on success). */
export function mqUnlink(name: string): number {
  return sysTry('mq_unlink', [bareName(name)]).errno;
}
