// Unix98 ptys: one end's state read through our copy of a task's fd (pidfd_getfd), as CRIU's
// tty_info_entry / tty_file_entry records, and a pair made again from those records with the
// same index and settings.
//
// Read without side effects: every query is an ioctl that changes nothing. TIOCGPTPEER is not
// used on dump (opening and closing a slave from outside would change what the master's reader
// sees: EIO once the last slave closes). What the kernel keeps per pair (lock, packet mode) is
// asked of the master; TCGETS2/TIOCGWINSZ on a master reach the slave's termios and window,
// so both ends record the same settings, as in CRIU's images. The session and foreground group:
// TIOCGSID/TIOCGPGRP on a master answer anyone; on a slave only a task whose controlling tty it
// is, so for a slave the caller passes them from /proc (proc/tty.ts terminalSession).
import { fstatSync, statSync } from 'node:fs';
import { create, isFieldSet } from '@bufbuild/protobuf';
import {
  tty_info_entrySchema, tty_file_entrySchema, tty_data_entrySchema, TtyType,
  type tty_info_entry, type tty_file_entry, type tty_data_entry,
} from '../../image/gen/tty_pb.js';
import type { fown_entry } from '../../image/gen/fown_pb.js';
import {
  TIOC, E, sysTry, tcgets2, getLockedTermios, getWinsize, ptyIndex, ioctlGetInt, ioctlGetIntTry,
  type Termios, type Winsize,
} from '../../sys/index.js';
import { classifyTty, slaveIndex } from './classify.js';
import { termiosToEntry, winsizeToEntry } from './termios-record.js';
import { queueCounts, type QueueCounts } from './queue.js';

export interface PtyEnd {
  end: 'master' | 'slave';
  index: number;
  rdev: number;
  /** st_dev of the file: devtmpfs for /dev/ptmx, the devpts instance for a slave */
  dev: number;
  termios: Termios;
  lockedTermios: Termios;
  winsize: Winsize;
  /** TIOCGEXCL of this end */
  exclusive: boolean;
  /** slave still locked (TIOCSPTLCK; unlockpt clears it); asked of a master, false on a slave */
  locked: boolean;
  /** TIOCPKT; asked of a master, false on a slave */
  packetMode: boolean;
  /** session the terminal controls, 0 if none; its foreground process group, 0 if none */
  sid: number;
  pgrp: number;
  queued: QueueCounts;
  /**
   * Hung up: a slave whose master was closed (the kernel hangs it up; its ioctls answer EIO).
   * Only index, rdev and dev mean anything then; the record carries no settings (as CRIU's).
   */
  hungUp: boolean;
  /** owner and mode of the slave's node in devpts (grantpt sets them), when it could be read */
  node?: { uid: number; gid: number; mode: number };
}

export interface DumpPtyOptions {
  /** for a slave: its session and foreground group, from /proc (terminalSession) */
  session?: { sid: number; pgrp: number } | null;
  /** the devpts directory of the task's mount namespace (default /dev/pts) */
  devpts?: string;
}

/** Is `fd` (ours) a pty end, and which. */
export function ptyEndKind(fd: number): 'master' | 'slave' | null {
  const cls = classifyTty(fstatSync(fd).rdev);
  return cls === 'pty-master' ? 'master' : cls === 'pty-slave' ? 'slave' : null;
}

export function dumpPtyEnd(fd: number, opts: DumpPtyOptions = {}): PtyEnd {
  const st = fstatSync(fd);
  const cls = classifyTty(st.rdev);
  if (cls !== 'pty-master' && cls !== 'pty-slave') throw new Error(`fd ${fd} is not a pty end (${cls}, rdev 0x${st.rdev.toString(16)})`);
  const master = cls === 'pty-master';
  const index = master ? ptyIndex(fd) : slaveIndex(st.rdev);
  const what = `pty ${index} ${master ? 'master' : 'slave'}`;
  if (!master && isHungUp(fd)) return hungUpEnd(index, st.rdev, st.dev);
  let sid = 0;
  let pgrp = 0;
  const sidQ = ioctlGetIntTry(fd, TIOC.TIOCGSID);
  if (sidQ.value !== null) {
    sid = sidQ.value;
    pgrp = Math.max(0, ioctlGetIntTry(fd, TIOC.TIOCGPGRP).value ?? 0);
  } else if (!master && opts.session) {
    ({ sid, pgrp } = opts.session);
  }
  const e: PtyEnd = {
    end: master ? 'master' : 'slave', index, rdev: st.rdev, dev: st.dev,
    termios: tcgets2(fd, what), lockedTermios: getLockedTermios(fd, what), winsize: getWinsize(fd, what),
    exclusive: ioctlGetInt(fd, TIOC.TIOCGEXCL, `TIOCGEXCL ${what}`) !== 0,
    locked: master ? ioctlGetInt(fd, TIOC.TIOCGPTLCK, `TIOCGPTLCK ${what}`) !== 0 : false,
    packetMode: master ? ioctlGetInt(fd, TIOC.TIOCGPKT, `TIOCGPKT ${what}`) !== 0 : false,
    sid, pgrp, queued: queueCounts(fd), hungUp: false,
  };
  try {
    const n = master ? statSync(`${opts.devpts ?? '/dev/pts'}/${index}`) : st;
    if (classifyTty(n.rdev) === 'pty-slave' && slaveIndex(n.rdev) === index) e.node = { uid: n.uid, gid: n.gid, mode: n.mode & 0o7777 };
  } catch {
    // a master whose slave node is not visible here (another devpts instance): no owner to keep
  }
  return e;
}

/** A slave whose master was closed: its ioctls answer EIO. */
export function isHungUp(fd: number): boolean {
  const r = sysTry('ioctl', [fd, TIOC.TCGETS2, Buffer.alloc(44)]);
  return r.ret < 0 && r.errno === E.EIO;
}

function hungUpEnd(index: number, rdev: number, dev: number): PtyEnd {
  const none: Termios = { iflag: 0, oflag: 0, cflag: 0, lflag: 0, line: 0, cc: new Array(19).fill(0), ispeed: 0, ospeed: 0 };
  return {
    end: 'slave', index, rdev, dev, termios: none, lockedTermios: none, winsize: { row: 0, col: 0, xpixel: 0, ypixel: 0 },
    exclusive: false, locked: false, packetMode: false, sid: 0, pgrp: 0, queued: { readable: 0, unsent: 0 }, hungUp: true,
  };
}

/** CRIU's tty_info_entry id of a pty end: index*2, +1 for the master. */
export function ptyInfoId(index: number, end: 'master' | 'slave'): number {
  return index * 2 + (end === 'master' ? 1 : 0);
}

/** The tty_info_entry CRIU writes for a pty end (tty-info.img, one per end per index). */
export function ptyInfoEntry(e: PtyEnd): tty_info_entry {
  if (e.hungUp) {
    return create(tty_info_entrySchema, {
      id: ptyInfoId(e.index, e.end), type: TtyType.PTY, locked: false, exclusive: false, packetMode: false,
      sid: 0, pgrp: 0, rdev: e.rdev >>> 0, pty: { index: e.index }, dev: e.dev >>> 0,
    });
  }
  const info = create(tty_info_entrySchema, {
    id: ptyInfoId(e.index, e.end), type: TtyType.PTY, locked: e.locked, exclusive: e.exclusive,
    packetMode: e.packetMode, sid: e.sid, pgrp: e.pgrp, rdev: e.rdev >>> 0,
    termios: termiosToEntry(e.termios), termiosLocked: termiosToEntry(e.lockedTermios),
    winsize: winsizeToEntry(e.winsize), pty: { index: e.index }, dev: e.dev >>> 0,
  });
  if (e.node) {
    info.uid = e.node.uid;
    info.gid = e.node.gid;
  }
  return info;
}

/**
 * The tty_file_entry of one open file description of a pty end (tty.img). CRIU also writes a
 * reg_file_entry with the same id naming the path (/dev/ptmx or /dev/pts/N), which it opens.
 */
export function ttyFileEntry(fileId: number, ttyInfoId: number, flags: number, fown: fown_entry): tty_file_entry {
  return create(tty_file_entrySchema, { id: fileId, ttyInfoId, flags: flags >>> 0, fown });
}

/** tty-data.img: bytes read from the end `ttyInfoId`, written into its peer on restore (CRIU's rule). */
export function ttyDataEntry(ttyInfoId: number, data: Buffer): tty_data_entry {
  return create(tty_data_entrySchema, { ttyId: ttyInfoId, data: new Uint8Array(data) });
}

/** Does an info record carry the terminal's settings (CRIU: a hung-up terminal has none)? */
export function hasSettings(info: tty_info_entry): boolean {
  return isFieldSet(info, tty_info_entrySchema.field.termios) && isFieldSet(info, tty_info_entrySchema.field.winsize);
}
