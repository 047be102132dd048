// Controlling terminals: making a restored session's terminal its controlling tty again, and
// /dev/tty fds.
//
// TIOCSCTTY works only for the calling process (a session leader without a controlling tty), and
// TIOCSPGRP only for a member of the session the tty controls, so these ioctls run in the
// restored session leader: `TtyCaller` is "make this ioctl in that task" — a Remote injecting it
// into the stopped leader (remoteTtyCaller), or this very process (localTtyCaller, for a process
// that is itself the leader). The fd is the leader's own fd number of a slave: a slave of a pair
// createPtyPair made, one opened with TIOCGPTPEER from a master handed in from outside (runc's
// console master, --inherit-fd), or the caller's own terminal for --shell-job; the helper does
// not care where it came from.
import { fstatSync } from 'node:fs';
import { create } from '@bufbuild/protobuf';
import { tty_info_entrySchema, TtyType, type tty_info_entry } from '../../image/gen/tty_pb.js';
import { O, TIOC, tcgets2, getLockedTermios, getWinsize, ioctlSetInt, ioctlValue, ioctlGetInt, vmWrite } from '../../sys/index.js';
import type { Remote, Scratch } from '../../ptrace/index.js';
import { classifyTty } from './classify.js';
import { termiosToEntry, winsizeToEntry } from './termios-record.js';

export interface TtyCaller {
  /** ioctl(fd, req, value) in the task */
  ioctlValue(fd: number, req: number, value: number, what: string): void;
  /** ioctl(fd, req, &int) in the task, the int being `value` */
  ioctlSetInt(fd: number, req: number, value: number, what: string): void;
  /** ioctl(fd, req, &int) in the task, returning the int */
  ioctlGetInt(fd: number, req: number, what: string): number;
}

export const localTtyCaller: TtyCaller = {
  ioctlValue: (fd, req, value, what) => void ioctlValue(fd, req, value, what),
  ioctlSetInt: (fd, req, value, what) => ioctlSetInt(fd, req, value, what),
  ioctlGetInt: (fd, req, what) => ioctlGetInt(fd, req, what),
};

/** The ioctls injected into a stopped task; the int lives in 4 bytes of `scratch`. */
export function remoteTtyCaller(remote: Remote, scratch: Scratch): TtyCaller {
  const cell = scratch.alloc(4);
  return {
    ioctlValue: (fd, req, value, what) => void remote.call('ioctl', [fd, req, value], what),
    ioctlSetInt: (fd, req, value, what) => {
      const b = Buffer.alloc(4);
      b.writeInt32LE(value, 0);
      vmWrite(scratch.pid, cell, b);
      remote.call('ioctl', [fd, req, cell], what);
    },
    ioctlGetInt: (fd, req, what) => {
      remote.call('ioctl', [fd, req, cell], what);
      return scratch.read(cell, 4).readInt32LE(0);
    },
  };
}

/**
 * Makes `fd` (the task's fd number of a terminal) the controlling terminal of the calling task's
 * session. The task must be a session leader without one; and it must be done before the leader
 * forks the rest of its session: a process gets its controlling tty only from TIOCSCTTY (leaders)
 * or by inheriting it at fork, so a member forked earlier would have none. TIOCSCTTY makes the
 * leader's group the foreground one. `steal`: take the terminal from another session (1, needs
 * CAP_SYS_ADMIN), as --shell-job may have to.
 */
export function acquireControllingTty(caller: TtyCaller, fd: number, steal = false): void {
  caller.ioctlValue(fd, TIOC.TIOCSCTTY, steal ? 1 : 0, `TIOCSCTTY fd ${fd}`);
}

/**
 * Puts `pgrp` (a group of the caller's session that exists by now) in the foreground of the
 * session's controlling terminal `fd`; called in a task of that session (its leader is in the
 * foreground after TIOCSCTTY, so no SIGTTOU).
 */
export function setForegroundGroup(caller: TtyCaller, fd: number, pgrp: number): void {
  caller.ioctlSetInt(fd, TIOC.TIOCSPGRP, pgrp, `TIOCSPGRP ${pgrp} fd ${fd}`);
}

/** Both at once, for a session whose members are all forked afterwards or in the leader's group. */
export function makeControllingTty(caller: TtyCaller, fd: number, pgrp: number, steal = false): void {
  acquireControllingTty(caller, fd, steal);
  if (pgrp) setForegroundGroup(caller, fd, pgrp);
}

/**
 * Opens /dev/tty in the stopped task itself (its file binds to the opener's controlling
 * terminal, so nobody else can open it for the task), after acquireControllingTty of its session,
 * and moves it to `fd`. `flags` are the recorded open flags (O_NOCTTY is added: it changes
 * nothing for /dev/tty and keeps the open from acquiring anything).
 */
export function openCttyInTask(remote: Remote, scratch: Scratch, flags: number, fd: number): void {
  const path = scratch.putString('/dev/tty');
  const got = Number(remote.call('openat', [AT_FDCWD, path, flags | O.NOCTTY], `open /dev/tty for fd ${fd}`));
  if (got === fd) return;
  try {
    remote.call('dup3', [got, fd, flags & O.CLOEXEC], `/dev/tty to fd ${fd}`);
  } finally {
    remote.call('close', [got], 'temporary /dev/tty fd');
  }
}

const AT_FDCWD = -100;

/** CRIU's fixed tty_info id of /dev/tty files (CTTY_INDEX 1006, times two). */
export const CTTY_INFO_ID = 1006 * 2;

/**
 * The tty_info_entry of a /dev/tty fd (type CTTY, one for the whole image, as CRIU writes it).
 * Its file is bound to the opener's controlling terminal at open time, so on restore it is
 * opened by the task itself (an injected open of /dev/tty) after its session has its
 * controlling tty again; the settings belong to that terminal's own record. `session` is from
 * /proc (TIOCGSID through /dev/tty answers only its own session's tasks).
 */
export function cttyInfoEntry(fd: number, session: { sid: number; pgrp: number } | null): tty_info_entry {
  const st = fstatSync(fd);
  if (classifyTty(st.rdev) !== 'ctty') throw new Error(`fd ${fd} is not /dev/tty`);
  return create(tty_info_entrySchema, {
    id: CTTY_INFO_ID, type: TtyType.CTTY, locked: false, exclusive: false, packetMode: false,
    sid: session?.sid ?? 0, pgrp: session?.pgrp ?? 0, rdev: st.rdev >>> 0, dev: st.dev >>> 0,
    termios: termiosToEntry(tcgets2(fd, '/dev/tty')), termiosLocked: termiosToEntry(getLockedTermios(fd, '/dev/tty')),
    winsize: winsizeToEntry(getWinsize(fd, '/dev/tty')),
  });
}
