// poll(2) on one fd without waiting, and the epoll event bits (linux/eventpoll.h).
import { sys } from './libc.js';

export const EPOLL = {
  IN: 0x1, PRI: 0x2, OUT: 0x4, ERR: 0x8, HUP: 0x10, RDNORM: 0x40, RDBAND: 0x80, WRNORM: 0x100,
  WRBAND: 0x200, MSG: 0x400, RDHUP: 0x2000, EXCLUSIVE: 0x10000000, WAKEUP: 0x20000000,
  ONESHOT: 0x40000000, ET: 0x80000000,
} as const;

/** Every readiness event a file can report (poll's and epoll's alike). */
export const ALL_READY = EPOLL.IN | EPOLL.PRI | EPOLL.OUT | EPOLL.ERR | EPOLL.HUP | EPOLL.RDNORM | EPOLL.RDBAND | EPOLL.WRNORM | EPOLL.WRBAND | EPOLL.MSG | EPOLL.RDHUP;

/** What `fd` is ready for now, of `events` (ERR and HUP always count), without waiting. */
export function readyNow(fd: number, events: number = ALL_READY): number {
  const pfd = Buffer.alloc(8);
  pfd.writeInt32LE(fd, 0);
  pfd.writeInt16LE(events & 0x7fff, 4);
  const n = sys('poll', [pfd, 1, 0], `poll fd ${fd}`);
  return n > 0 ? pfd.readUInt16LE(6) : 0;
}
