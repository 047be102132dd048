// Terminals: pty masters (/dev/ptmx), pty slaves (/dev/pts/N) and /dev/tty, as CRIU records
// them: a tty_file_entry per open file description (files.img, type TTY) pointing at a
// tty_info_entry per end and index (tty-info.img: termios, window, packet mode, lock, exclusive,
// session, foreground group), a REG entry with the path (regf_id), and the bytes queued in each
// direction (tty-data.img). The mechanics are in resources/tty/; this is the fd kind over them.
//
// Queued data has no MSG_PEEK: the dump reads it (resources/tty/queue.ts) and writes it back at
// once, while the tree is frozen, so a --leave-running or failed dump leaves the same bytes
// queued (a SIGKILL of cryo between the two loses them). A pair whose master is in the tree is
// drained: through a slave of the tree, or, when every slave is closed, through one cryo opens
// for the moment from the master (TIOCGPTPEER; the input typed to a program that closed its
// slave waits there for its next open). A locked master's (no slave can open) and an outside
// terminal's queues stay (not saved).
//
// On restore each pair is made once at its index (resources/tty/terminals.ts), every fd gets its
// own description like the original; /dev/tty is opened by the task itself (phase 'in-task')
// once its session has its controlling terminal again (the session hooks below).
import { statSync } from 'node:fs';
import { create, isFieldSet } from '@bufbuild/protobuf';
import { tty_info_entrySchema, tty_data_entrySchema, TtyType, type tty_info_entry, type tty_data_entry, type tty_file_entry } from '../../image/gen/tty_pb.js';
import { O, TIOC, ioctlGetInt, ioctlGetIntTry, ptyIndex, tcgets2, S_IF, openPtyPeer, closeFd } from '../../sys/index.js';
import { UserError } from '../../util/errors.js';
import type { Blocker } from '../../util/blocker.js';
import { terminalSession } from '../../proc/tty.js';
import { classifyTty, slaveIndex, ttyBlocker, isExternal, outsideHint, extTtyKey, type SeenTty } from '../tty/classify.js';
import { extTtyId, extTtyInfoEntry, isExternalTty } from '../tty/external.js';
import { dumpPtyEnd, ptyInfoEntry, ptyInfoId, isHungUp, ttyDataEntry } from '../tty/pty.js';
import { cttyInfoEntry, openCttyInTask, CTTY_INFO_ID } from '../tty/ctty.js';
import { takeQueuedInput, takeQueuedOutput, putQueuedInput, putQueuedOutput } from '../tty/queue.js';
import { RestoreTerminals } from '../tty/terminals.js';
import type { FdKind, FdSeen, FdDumpContext, KindImages, KindImage } from './fd-kind.js';
import type { FownData } from './fown.js';
import type { FileScan } from './scan.js';
import { isTerminalLink, type TreeTerminals } from './tty-scan.js';
import { withOurCopy } from './our-copy.js';

export interface TtyRecord {
  id: number;
  ttyInfoId: number;
  flags: number;
  fown: FownData;
  regfId?: number;
  /** Dump side: the end's tty_info_entry and the data taken from its pair (written beside files.img). */
  info?: tty_info_entry;
  data?: tty_data_entry[];
  /** Restore side: the images' terminals. */
  terminals?: RestoreTerminals;
}


/** What a terminal fd is, as classify.ts judges it. */
function seenTty(f: FdSeen, t: TreeTerminals): SeenTty {
  const st = statSync(`/proc/${f.pid}/fd/${f.fd}`);
  const rdev = st.rdev;
  const s: SeenTty = { pid: f.pid, fd: f.fd, path: f.link, rdev, dev: st.dev, sid: 0 };
  const cls = classifyTty(rdev);
  if (cls === 'pty-master') {
    withOurCopy(f.pid, f.fd, (ours) => {
      s.index = ptyIndex(ours);
      s.sid = Math.max(0, ioctlGetIntTry(ours, TIOC.TIOCGSID).value ?? 0);
    });
  } else if (cls === 'pty-slave') {
    s.index = slaveIndex(rdev);
    s.hungUp = withOurCopy(f.pid, f.fd, isHungUp);
    s.sid = terminalSession(t.stats, rdev)?.sid ?? 0;
  } else if (cls === 'ctty') {
    s.cttyRdev = t.stats.find((x) => x.pid === f.pid)?.ttyNr ?? 0;
    s.sid = s.cttyRdev ? (terminalSession(t.stats, s.cttyRdev)?.sid ?? 0) : 0;
  }
  return s;
}

/**
 * A task whose controlling terminal cannot come back: a pty from outside the tree without
 * --shell-job, or a console, virtual console or serial line (named even when no fd refers to it).
 */
export function cttyBlocker(pid: number, t: TreeTerminals): Blocker | null {
  const nr = t.stats.find((s) => s.pid === pid)?.ttyNr ?? 0;
  if (!nr) return null;
  const cls = classifyTty(nr);
  if (isExternal(t, nr)) return null; // --external tty[RDEV:DEV]: the restore is handed one
  if (cls === 'pty-slave') {
    if (t.masterIndexes.has(slaveIndex(nr)) || t.shellJob) return null;
    return { pid, kind: 'terminal', reason: `its controlling terminal /dev/pts/${slaveIndex(nr)} is from outside the tree`, hint: outsideHint(slaveKey(pid, nr)) };
  }
  return { pid, kind: 'terminal', reason: `its controlling terminal is a ${cls} (${nr >>> 8 & 0xfff}:${nr & 0xff}) — not supported` };
}

/** CRIU's key of the task's pty slave `rdev`, its devpts instance found in the task's own /dev/pts. */
function slaveKey(pid: number, rdev: number): string | undefined {
  try {
    const st = statSync(`/proc/${pid}/root/dev/pts/${slaveIndex(rdev)}`);
    return st.rdev === rdev ? extTtyKey(rdev, st.dev) : undefined;
  } catch {
    return undefined;
  }
}

/** Takes the pair's queued bytes in both directions and puts them back (see the header). */
function takeQueued(index: number, t: TreeTerminals): tty_data_entry[] {
  const m = t.masters.get(index);
  const s = t.slaves.get(index);
  if (t.drained.has(index) || !m) return [];
  t.drained.add(index);
  return withOurCopy(m.pid, m.fd, (master) =>
    withSlave(master, s, (slave) => {
      if (isHungUp(slave)) return [];
      const out: tty_data_entry[] = [];
      const output = takeQueuedOutput(master, ioctlGetInt(master, TIOC.TIOCGPKT, `TIOCGPKT pty ${index}`) !== 0).data;
      if (output.length) {
        putQueuedOutput(slave, output);
        out.push(ttyDataEntry(ptyInfoId(index, 'master'), output));
      }
      const input = takeQueuedInput(slave, tcgets2(slave)).data;
      if (input.length) {
        putQueuedInput(slave, input);
        out.push(ttyDataEntry(ptyInfoId(index, 'slave'), input));
      }
      return out;
    }),
  );
}

/** Our copy of the tree's slave, or a slave of ours opened from the master when the tree holds none. */
function withSlave<T>(master: number, s: { pid: number; fd: number } | undefined, fn: (slave: number) => T[]): T[] {
  if (s) return withOurCopy(s.pid, s.fd, fn);
  if (ioctlGetInt(master, TIOC.TIOCGPTLCK, `TIOCGPTLCK fd ${master}`) !== 0) return [];
  const slave = openPtyPeer(master, O.RDWR | O.NOCTTY | O.NONBLOCK | O.CLOEXEC);
  try {
    return fn(slave);
  } finally {
    closeFd(slave);
  }
}

function terminalsOf(images: KindImages): RestoreTerminals {
  return images.memo('tty', () => new RestoreTerminals(
    (images.read('tty-info.img') ?? []) as tty_info_entry[], (images.read('tty-data.img') ?? []) as tty_data_entry[], images.shellJob,
  ));
}

export const ttyKind = {
  name: 'tty' as const,
  type: 'TTY',
  field: 'tty',
  phase: 'table',
  object: false,
  recognise: (link: string, mode: number | null) => isTerminalLink(link) && mode !== null && (mode & S_IF.MT) === S_IF.CHR,
  blocker(f: FdSeen, scan: FileScan): Blocker | null {
    const t = scan.terminals;
    const s = seenTty(f, t);
    const b = ttyBlocker(s, t);
    if (b || !t.shellJob || s.hungUp || isExternal(t, s.rdev, s.dev)) return b;
    // --shell-job reattaches one terminal from outside: the first one seen.
    const real = classifyTty(s.rdev) === 'ctty' ? s.cttyRdev ?? 0 : s.rdev;
    if (classifyTty(real) !== 'pty-slave' || t.masterIndexes.has(slaveIndex(real)) || t.outside[0] === slaveIndex(real)) return null;
    return { pid: f.pid, fd: f.fd, kind: 'terminal', reason: `the tree holds ${t.outside.length} terminals from outside (${t.outside.map((i) => `/dev/pts/${i}`).join(', ')}); --shell-job reattaches only one` };
  },
  dump(f: FdSeen, id: number, flags: number, fown: FownData, ctx: FdDumpContext): TtyRecord {
    const t = ctx.scan.terminals;
    const st = statSync(`/proc/${f.pid}/fd/${f.fd}`);
    const cls = classifyTty(st.rdev);
    const regfId = ctx.addPath(f.link, flags, st.mode);
    if (cls !== 'ctty' && isExternal(t, st.rdev, st.dev)) {
      const infoId = extTtyId([...t.external!].indexOf(extTtyKey(st.rdev, st.dev)));
      const info = withOurCopy(f.pid, f.fd, (ours) => extTtyInfoEntry(ours, infoId, terminalSession(t.stats, st.rdev)));
      return { id, ttyInfoId: info.id, flags, fown, regfId, info, data: [] };
    }
    if (cls === 'ctty') {
      const nr = t.stats.find((x) => x.pid === f.pid)?.ttyNr ?? 0;
      const info = withOurCopy(f.pid, f.fd, (ours) => cttyInfoEntry(ours, nr ? terminalSession(t.stats, nr) : null));
      return { id, ttyInfoId: CTTY_INFO_ID, flags, fown, regfId, info, data: [] };
    }
    const session = cls === 'pty-slave' ? terminalSession(t.stats, st.rdev) : null;
    const end = withOurCopy(f.pid, f.fd, (ours) => dumpPtyEnd(ours, { session }));
    const data = end.hungUp || !t.masterIndexes.has(end.index) ? [] : takeQueued(end.index, t);
    return { id, ttyInfoId: ptyInfoId(end.index, end.end), flags, fown, regfId, info: ptyInfoEntry(end), data };
  },
  images(records: TtyRecord[]): KindImage[] {
    const infos = new Map<number, tty_info_entry>();
    for (const r of records) if (r.info && !infos.has(r.info.id)) infos.set(r.info.id, r.info);
    const data = records.flatMap((r) => r.data ?? []);
    const out: KindImage[] = [{ file: 'tty-info.img', kind: 'TTY_INFO', entries: [...infos.values()].sort((a, b) => a.id - b.id).map((i) => create(tty_info_entrySchema, i)) }];
    if (data.length) out.push({ file: 'tty-data.img', kind: 'TTY_DATA', entries: data.map((d) => create(tty_data_entrySchema, d)) });
    return out;
  },
  read(entry: unknown, id: number, images: KindImages): TtyRecord {
    const e = entry as tty_file_entry;
    const terminals = terminalsOf(images);
    const info = terminals.infos.get(e.ttyInfoId);
    if (!info) throw new UserError(`files.img: tty file ${id} refers to tty-info ${e.ttyInfoId}, missing from tty-info.img`);
    if (isExternalTty(info)) {
      if (!isFieldSet(info, tty_info_entrySchema.field.dev)) throw new UserError(`tty-info.img: external terminal ${info.id} without its dev`);
      return { id, ttyInfoId: e.ttyInfoId, flags: e.flags, fown: e.fown as FownData, terminals };
    }
    if (info.type !== TtyType.PTY && info.type !== TtyType.CTTY) throw new UserError(`tty-info.img: tty ${info.id} of type ${TtyType[info.type] ?? info.type} — not supported`);
    if (info.type === TtyType.PTY && !info.pty) throw new UserError(`tty-info.img: pty ${info.id} has no index`);
    if (terminals.isOutside(info) && !images.shellJob) {
      throw new UserError(`files.img: tty file ${id} is /dev/pts/${info.pty!.index}, a terminal from outside the dumped tree — restore with --shell-job to attach it to the terminal cryo runs on`);
    }
    return { id, ttyInfoId: e.ttyInfoId, flags: e.flags, fown: e.fown as FownData, terminals };
  },
  // --inherit-fd fd[N]:tty[RDEV:DEV]: the terminal to use for each external one of the images.
  plan(records: TtyRecord[], inherit: Map<string, number>): void {
    records[0]?.terminals!.takeExternal(inherit);
  },
  phaseOf: (rec: TtyRecord) => (rec.ttyInfoId === CTTY_INFO_ID ? 'in-task' : 'table'),
  open(rec: TtyRecord): number {
    const terms = rec.terminals!;
    const info = terms.infos.get(rec.ttyInfoId)!;
    if (isExternalTty(info)) return terms.openExternal(info, rec.flags);
    const index = info.pty!.index;
    if (terms.isOutside(info)) return terms.openCallerTerminal(info, rec.flags);
    return info.id === ptyInfoId(index, 'master') ? terms.openMaster(index, rec.flags) : terms.openSlave(index, rec.flags);
  },
  openInTask(rec: TtyRecord, fd: number, t) {
    const cloexec = (t.table.find((x) => x.fd === fd)?.flags ?? 0) & 1 ? O.CLOEXEC : 0;
    t.task.scratch.reset();
    openCttyInTask(t.task.remote, t.task.scratch, (rec.flags & ~O.CLOEXEC) | cloexec, fd);
  },
  afterSetsid(r, images) {
    terminalsOf(images).afterSetsid(r);
  },
  afterChildren(r, images) {
    terminalsOf(images).afterChildren(r);
  },
} satisfies FdKind<TtyRecord>;
