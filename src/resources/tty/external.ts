// Terminals from outside the tree that the caller names and hands back (CRIU's syntax):
// `dump --external tty[RDEV:DEV]` says the terminal whose device is RDEV, on the filesystem DEV
// (st_rdev and st_dev, hex, glibc's dev_t encoding), belongs to the caller: runc's or LXC's
// console, a pty slave whose master the caller keeps. The dump records it as a tty_info_entry of
// type EXT_TTY (its rdev and dev, the session it controls and its foreground group; its settings
// when it answers) instead of refusing it. `restore --inherit-fd fd[N]:tty[RDEV:DEV]` gives the
// terminal to use in its place, as an fd of cryo's: a slave (or any terminal), or a pty master.
//
// Each fd of the tree on it gets a description of its own with the record's flags, as it had:
// from a master, its slave (TIOCGPTPEER, which works whatever devpts instance it is on); from
// anything else, the same device opened again through /proc/self/fd/N (a pty master is never
// reopened that way: opening ptmx makes a new pty). The terminal is used as it is: its settings
// are the caller's (what the dump recorded is not applied), and it must not be another session's
// controlling terminal (the session leader takes it with TIOCSCTTY, without stealing it).
import { fstatSync, openSync } from 'node:fs';
import { create } from '@bufbuild/protobuf';
import { tty_info_entrySchema, TtyType, type tty_info_entry } from '../../image/gen/tty_pb.js';
import { O, tcgets2, getLockedTermios, getWinsize, openPtyPeer, S_IF } from '../../sys/index.js';
import { UserError } from '../../util/errors.js';
import { extTtyKey } from '../../util/ext-tty.js';
import { classifyTty } from './classify.js';
import { termiosToEntry, winsizeToEntry } from './termios-record.js';

/**
 * tty_info ids of external terminals: far above CRIU's (a pty's index*2+1, its fixed ids near
 * 2000), one per terminal named at dump, in the order they were named.
 */
const EXT_TTY_ID_BASE = 0x40000000;

export function extTtyId(position: number): number {
  return EXT_TTY_ID_BASE + 2 * position;
}

/** Whether `info` is such a terminal; its key. */
export function isExternalTty(info: tty_info_entry): boolean {
  return info.type === TtyType.EXT_TTY;
}

export function keyOfInfo(info: tty_info_entry): string {
  return extTtyKey(info.rdev, info.dev ?? 0);
}

/**
 * The record of an external terminal from our copy `fd` of a task's fd on it; `session` from
 * /proc (the session it controls, its foreground group). The settings are kept when it answers
 * (a hung-up terminal does not): the images say what the program had, nothing applies them.
 */
export function extTtyInfoEntry(fd: number, id: number, session: { sid: number; pgrp: number } | null): tty_info_entry {
  const st = fstatSync(fd);
  const info = create(tty_info_entrySchema, {
    id, type: TtyType.EXT_TTY, locked: false, exclusive: false, packetMode: false,
    sid: session?.sid ?? 0, pgrp: session?.pgrp ?? 0, rdev: st.rdev >>> 0, dev: st.dev >>> 0,
  });
  try {
    info.termios = termiosToEntry(tcgets2(fd));
    info.termiosLocked = termiosToEntry(getLockedTermios(fd));
    info.winsize = winsizeToEntry(getWinsize(fd));
  } catch {
    // hung up (EIO): no settings, as for a hung-up pty
  }
  return info;
}

/** A new description of the terminal `given` stands for (see the header), with `flags`. */
export function openExternalTty(given: number, flags: number, key: string): number {
  const open = (flags & ~O.CLOEXEC) | O.NOCTTY | O.CLOEXEC;
  const st = fstatSync(given);
  if ((st.mode & S_IF.MT) !== S_IF.CHR || !answers(given)) throw new UserError(`--inherit-fd fd[${given}]:${key}: fd ${given} is not a terminal (or one hung up)`);
  try {
    if (classifyTty(st.rdev) === 'pty-master') return openPtyPeer(given, open);
    return openSync(`/proc/self/fd/${given}`, open);
  } catch (e) {
    throw new UserError(`--inherit-fd fd[${given}]:${key}: cannot open the terminal it gives: ${(e as Error).message}`);
  }
}

/** A terminal that is not hung up answers TCGETS2. */
function answers(fd: number): boolean {
  try {
    tcgets2(fd);
    return true;
  } catch {
    return false;
  }
}
