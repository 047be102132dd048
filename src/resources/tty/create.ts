// A pty pair made again from its records, in cryo (the restorer hands the ends to the tasks).
//
// The index: the kernel gives a new master the lowest free index of the devpts instance, so we
// open the instance's ptmx until TIOCGPTN says the wanted one, holding the lower ones open on the
// way and closing them after (CRIU's way). If the index is taken (its /dev/pts/N exists, or the
// kernel hands out a higher one), that is an error naming it. Then, in an order where nothing
// undoes what came before: termios and window size through the master, packet mode; when a
// slave is needed, unlock and open it (TIOCGPTPEER: no path lookup, O_NOCTTY), its node's owner,
// the queued output, its exclusive mode; the queued input; the locked-termios mask (after
// TCSETS2, which a locked bit would stop, and after the queued data, which changes termios for a
// while); the master's exclusive mode; the lock last (a locked pty refuses slave opens).
import { existsSync, openSync, closeSync } from 'node:fs';
import { isFieldSet } from '@bufbuild/protobuf';
import { tty_info_entrySchema, type tty_info_entry } from '../../image/gen/tty_pb.js';
import {
  O, TIOC, sys, ptyIndex, openPtyPeer, tcsets2, setLockedTermios, setWinsize, ioctlSetInt, ioctlValue,
  type Termios, type Winsize,
} from '../../sys/index.js';
import { termiosFromEntry, winsizeFromEntry } from './termios-record.js';
import { hasSettings } from './pty.js';
import { putQueuedInput, putQueuedOutput } from './queue.js';

export interface PtyPairRecord {
  index: number;
  /** tty_info_entry of the master end, if the tree held the master */
  master?: tty_info_entry;
  /** tty_info_entry of the slave end, if the tree held a slave */
  slave?: tty_info_entry;
  /** bytes read from the master on dump (output), written into the new slave */
  fromMaster?: Buffer;
  /** bytes read from the slave on dump (input), written into the new master */
  fromSlave?: Buffer;
}

export interface CreatePtyOptions {
  /** the devpts instance's directory (its ptmx and N entries); default /dev/pts */
  devpts?: string;
  /** status flags of the ends (O_NONBLOCK ...); the access mode is always O_RDWR here */
  masterFlags?: number;
  slaveFlags?: number;
  /** how many masters may be opened on the way to the index (default 1024) */
  maxOpens?: number;
  /**
   * With no slave record: open and close a slave, so the master reads EIO as one whose slave
   * was opened and closed does (takeQueuedOutput's hungUp says so on dump; CRIU's images do not
   * record it). Default: when the pty is unlocked (a locked slave cannot have been opened).
   */
  slaveClosed?: boolean;
}

export interface PtyPair {
  index: number;
  /** -1 for a hung-up slave (its master was closed) */
  master: number;
  /** -1 when the records have no slave */
  slave: number;
}

export class PtyIndexError extends Error {}

function openPtmx(devpts: string, flags: number): number {
  const path = existsSync(`${devpts}/ptmx`) ? `${devpts}/ptmx` : '/dev/ptmx';
  return openSync(path, O.RDWR | O.NOCTTY | O.CLOEXEC | (flags & ~O.ACCMODE));
}

/** A master with index `index`, or PtyIndexError. */
export function openMasterAt(index: number, opts: CreatePtyOptions = {}): number {
  const devpts = opts.devpts ?? '/dev/pts';
  if (existsSync(`${devpts}/${index}`)) throw new PtyIndexError(`pty index ${index} is in use on this machine (${devpts}/${index} exists)`);
  const held: number[] = [];
  const max = opts.maxOpens ?? 1024;
  try {
    for (let i = 0; i < max; i++) {
      const fd = openPtmx(devpts, opts.masterFlags ?? 0);
      const got = ptyIndex(fd);
      if (got === index) return fd;
      held.push(fd);
      if (got > index) throw new PtyIndexError(`pty index ${index} is in use on this machine (the kernel handed out ${got} after it)`);
    }
    throw new PtyIndexError(`pty index ${index} not reached after ${max} opens of ptmx`);
  } finally {
    for (const fd of held) closeSync(fd);
  }
}

interface Settings {
  termios?: Termios;
  locked?: Termios;
  winsize?: Winsize;
}

function settingsOf(info: tty_info_entry | undefined, what: string): Settings {
  if (!info) return {};
  const s: Settings = {};
  if (isFieldSet(info, tty_info_entrySchema.field.termios)) s.termios = termiosFromEntry(info.termios!, `${what} termios`);
  if (isFieldSet(info, tty_info_entrySchema.field.termiosLocked)) s.locked = termiosFromEntry(info.termiosLocked!, `${what} locked termios`);
  if (isFieldSet(info, tty_info_entrySchema.field.winsize)) s.winsize = winsizeFromEntry(info.winsize!);
  return s;
}

/**
 * Applies a record's termios, locked termios and window size to a terminal fd: a pty end we
 * made, or one handed in from outside (runc's console, --inherit-fd), as CRIU does for both.
 */
export function applyTtyParams(fd: number, info: tty_info_entry, what = `tty fd ${fd}`): void {
  const s = settingsOf(info, what);
  if (s.termios) tcsets2(fd, s.termios, what);
  if (s.locked) setLockedTermios(fd, s.locked, what);
  if (s.winsize) setWinsize(fd, s.winsize, what);
}

export function createPtyPair(rec: PtyPairRecord, opts: CreatePtyOptions = {}): PtyPair {
  const mi = rec.master;
  const si = rec.slave;
  if (!mi && !si) throw new Error(`pty ${rec.index}: no record of either end`);
  const what = `pty ${rec.index}`;
  if (!mi && !hasSettings(si!)) return hungUpSlave(rec.index, opts);
  const master = openMasterAt(rec.index, opts);
  let slave = -1;
  try {
    // Settings go through the master (they reach the slave's termios and window): a slave is
    // opened only when the tree holds one, output must be queued into it, or the master must
    // see its slave closed. The slave's record is preferred: it is the end they belong to.
    const set = settingsOf(si && isFieldSet(si, tty_info_entrySchema.field.termios) ? si : mi!, what);
    if (set.termios) tcsets2(master, set.termios, what);
    if (set.winsize) setWinsize(master, set.winsize, what);
    if (mi?.packetMode) ioctlSetInt(master, TIOC.TIOCPKT, 1, `packet mode ${what}`);
    const closeSlave = opts.slaveClosed ?? (!si && !mi!.locked);
    if (si || closeSlave || rec.fromMaster?.length) {
      ioctlSetInt(master, TIOC.TIOCSPTLCK, 0, `unlock ${what}`);
      slave = openPtyPeer(master, O.RDWR | O.NOCTTY | O.CLOEXEC | ((opts.slaveFlags ?? 0) & ~O.ACCMODE));
      const node = si ?? mi!;
      if (isFieldSet(node, tty_info_entrySchema.field.uid) && isFieldSet(node, tty_info_entrySchema.field.gid))
        sys('fchown', [slave, node.uid, node.gid], `owner of ${what} slave`);
      if (rec.fromMaster?.length) putQueuedOutput(slave, rec.fromMaster);
      if (si?.exclusive) ioctlValue(slave, TIOC.TIOCEXCL, 0, `exclusive ${what} slave`);
    }
    if (rec.fromSlave?.length) {
      if (slave < 0) throw new Error(`${what}: input queued for a slave, but the records have none`);
      putQueuedInput(slave, rec.fromSlave);
    }
    // The locked-termios mask after the queued data: writing it back changes termios for a while.
    if (set.locked) setLockedTermios(master, set.locked, what);
    if (mi?.exclusive) ioctlValue(master, TIOC.TIOCEXCL, 0, `exclusive ${what} master`);
    if (slave >= 0 && !si) {
      closeSync(slave);
      slave = -1;
    }
    // ptmx opens locked: unlocked above when a slave was needed, else as the record says.
    ioctlSetInt(master, TIOC.TIOCSPTLCK, mi?.locked ? 1 : 0, `lock state of ${what}`);
    return { index: rec.index, master, slave };
  } catch (e) {
    if (slave >= 0) closeSync(slave);
    closeSync(master);
    throw e;
  }
}

/**
 * A slave whose master was closed (a record without settings and no master): made at its index
 * and hung up the same way, by closing the new master. CRIU makes such a slave with a fake
 * master too.
 */
function hungUpSlave(index: number, opts: CreatePtyOptions): PtyPair {
  const master = openMasterAt(index, opts);
  try {
    ioctlSetInt(master, TIOC.TIOCSPTLCK, 0, `unlock pty ${index}`);
    const slave = openPtyPeer(master, O.RDWR | O.NOCTTY | O.CLOEXEC | ((opts.slaveFlags ?? 0) & ~O.ACCMODE));
    return { index, master: -1, slave };
  } finally {
    closeSync(master);
  }
}

/** Sets the mode of the slave's devpts node (kept in the slave's reg_file_entry mode by CRIU). */
export function setSlaveMode(slave: number, mode: number): void {
  sys('fchmod', [slave, mode & 0o7777], 'pty slave mode');
}
