// A task's fd table on restore: every open file description, opened or created by the
// restorer (restore/files.ts), pulled into the task with pidfd_getfd and put at its number, then
// each kind's afterTable hook (epolls register their targets under their old numbers).
import { readdirSync } from 'node:fs';
import { O, F, sys } from '../sys/index.js';
import { batchIn } from '../resources/context.js';
import type { BatchCall } from '../ptrace/index.js';
import type { RestoreTask } from '../resources/context.js';
import type { TaskImage } from './images.js';
import type { fdinfo_entry } from '../image/gen/fdinfo_pb.js';
import type { FdPhase, FdTableContext } from '../resources/files/fd-kind.js';
import { UserError } from '../util/errors.js';
import { openFile, type RestoreSession } from './files.js';

/** When the fd is made: with the table, or (a kind that names tasks) once they all exist. */
function phaseOf(session: RestoreSession, fi: fdinfo_entry): FdPhase {
  const k = session.ckpt.kindFiles.get(fi.id);
  return k ? (k.kind.phaseOf?.(k.record) ?? k.kind.phase) : 'table';
}

/** Installs the fd table: files opened here, pulled in by the task with pidfd_getfd. */
export function restoreFds(r: RestoreTask, img: TaskImage, session: RestoreSession): void {
  if (!img.fdinfo.length) return;
  const maxFd = Math.max(...img.fdinfo.map((f) => f.fd));
  installFds(r, img.fdinfo.filter((fi) => phaseOf(session, fi) === 'table'), maxFd, session);
  afterTable(r, img, maxFd, session);
}

/**
 * The fds of kinds restored once the task's children and threads exist (pidfds): their numbers
 * were left free by restoreFds.
 */
export function restoreFdsAfterChildren(r: RestoreTask, img: TaskImage, session: RestoreSession): void {
  if (!img.fdinfo.length) return;
  const maxFd = Math.max(...img.fdinfo.map((f) => f.fd));
  const late = img.fdinfo.filter((fi) => phaseOf(session, fi) === 'after-children');
  if (late.length) installFds(r, late, maxFd, session);
  // Those the task opens itself (/dev/tty: its session has its controlling terminal by now).
  for (const fi of img.fdinfo.filter((f) => phaseOf(session, f) === 'in-task')) {
    const k = session.ckpt.kindFiles.get(fi.id)!;
    if (!k.kind.openInTask) throw new Error(`kind ${k.kind.name}: phase 'in-task' without openInTask`);
    k.kind.openInTask(k.record, fi.fd, tableContext(r, img, maxFd, session));
  }
}

/** Fds pulled in per batch: four calls each at most, their results in the scratch area. */
const FDS_PER_BATCH = 128;

/**
 * Pulls `fds` into the task at their numbers; `maxFd`: the task's highest fd (temporaries go
 * above). Each fd is pidfd_getfd (which takes the lowest free number), then dup3 to its number
 * and close of the temporary, or only its FD_CLOEXEC set when it landed there: the numbers
 * pidfd_getfd will return follow from the task's table as /proc shows it now, so a whole run of
 * fds is one batch of calls (one stop) instead of two or three stops each. The task's pidfd of
 * the restorer (pidfd_open, moved above maxFd, closed at the end) is foreseen so too and goes in
 * the same batches: a task's table is one stop. A number that comes out otherwise than foreseen
 * fails the restore (the calls after it already used the foreseen one).
 */
function installFds(r: RestoreTask, fds: fdinfo_entry[], maxFd: number, session: RestoreSession): void {
  if (!fds.length) return;
  const open = new Set(readdirSync(`/proc/${r.remote.t.tid}/fd`).map(Number));
  const setup: BatchCall[] = [];
  const foreseen: Foreseen[] = [];
  let pidfd0 = r.restorerPidfd;
  if (pidfd0 === undefined) {
    pidfd0 = lowestFree(open);
    foreseen.push({ at: 0, fd: pidfd0, what: 'pidfd of the restorer' });
    setup.push({ name: 'pidfd_open', args: [r.restorerPid, 0], detail: 'pidfd of the restorer' });
    open.add(pidfd0);
  }
  const pidfd = lowestFree(open, maxFd + 1);
  foreseen.push({ at: setup.length, fd: pidfd, what: 'pidfd of the restorer, moved' });
  setup.push({ name: 'fcntl', args: [pidfd0, F.DUPFD_CLOEXEC, maxFd + 1], detail: 'pidfd of the restorer' });
  open.add(pidfd);
  if (r.restorerPidfd === undefined) {
    setup.push({ name: 'close', args: [pidfd0] });
    open.delete(pidfd0);
  }
  for (let i = 0; i < fds.length; i += FDS_PER_BATCH) {
    const last = i + FDS_PER_BATCH >= fds.length;
    pullRun(r, fds.slice(i, i + FDS_PER_BATCH), pidfd, open, session, i === 0 ? { calls: setup, foreseen } : { calls: [], foreseen: [] }, last ? pidfd : null);
  }
}

/** A call whose result must be the number foreseen from the task's table. */
interface Foreseen {
  at: number;
  fd: number;
  what: string;
}

/** The lowest fd number from `from` up not in `open` (what the kernel hands out next). */
function lowestFree(open: Set<number>, from = 0): number {
  let n = from;
  while (open.has(n)) n++;
  return n;
}

/**
 * One batch of installFds; `open`: the task's open fds, kept up to date. `before`: calls that go
 * first (the pidfd's), `closeAfter`: the pidfd, closed by the last batch.
 */
function pullRun(r: RestoreTask, fds: fdinfo_entry[], pidfd: number, open: Set<number>, session: RestoreSession, before: { calls: BatchCall[]; foreseen: Foreseen[] }, closeAfter: number | null): void {
  const calls: BatchCall[] = [...before.calls];
  const foreseen: Foreseen[] = [...before.foreseen];
  for (const fi of fds) {
    const what = `fd ${fi.fd}`;
    const fd = openFile(session, fi.id, what);
    // O_ASYNC registers the fd it is set through (SIGIO's si_fd): set by the task, on its own fd.
    const fl = sys('fcntl', [fd, F.GETFL]);
    if (fl & O.ASYNC) sys('fcntl', [fd, F.SETFL, fl & ~O.ASYNC]);
    const got = lowestFree(open);
    foreseen.push({ at: calls.length, fd: got, what });
    calls.push({ name: 'pidfd_getfd', args: [pidfd, fd, 0], detail: what });
    const cloexec = (fi.flags & 1) !== 0;
    if (got === fi.fd) {
      calls.push({ name: 'fcntl', args: [got, F.SETFD, cloexec ? 1 : 0], detail: what });
    } else {
      calls.push({ name: 'dup3', args: [got, fi.fd, cloexec ? O.CLOEXEC : 0], detail: what });
      calls.push({ name: 'close', args: [got], detail: what });
    }
    open.add(fi.fd);
    if (fl & O.ASYNC) calls.push({ name: 'fcntl', args: [fi.fd, F.SETFL, fl], detail: `${what} O_ASYNC` });
  }
  if (closeAfter !== null) {
    calls.push({ name: 'close', args: [closeAfter], detail: 'pidfd of the restorer' });
    open.delete(closeAfter);
  }
  const mark = r.scratch.mark();
  const results = batchIn(r, calls);
  r.scratch.release(mark);
  for (const f of foreseen)
    if (results[f.at] !== BigInt(f.fd)) throw new Error(`pid ${r.pid} ${f.what}: the task got fd ${results[f.at]}, not the free fd ${f.fd} its table showed`);
}

/**
 * Now that every fd is in place, each kind with an afterTable hook (an epoll registering its
 * targets) runs it, once per record, in the first task that holds it.
 */
function afterTable(r: RestoreTask, img: TaskImage, maxFd: number, session: RestoreSession): void {
  for (const fi of img.fdinfo) {
    const k = session.ckpt.kindFiles.get(fi.id);
    if (!k?.kind.afterTable || session.afterTableDone.has(fi.id)) continue;
    session.afterTableDone.add(fi.id);
    k.kind.afterTable(k.record, fi.fd, tableContext(r, img, maxFd, session));
  }
}

/** What a kind's hooks get of a task whose table is whole. */
function tableContext(r: RestoreTask, img: TaskImage, maxFd: number, session: RestoreSession): FdTableContext {
  return {
    task: r,
    table: img.fdinfo,
    maxFd,
    pullFile(pid, fd, at) {
      const fi = session.ckpt.tasks.find((t) => t.pid === pid)?.fdinfo.find((f) => f.fd === fd);
      if (!fi) throw new UserError(`pid ${r.pid}: the images name fd ${fd} of pid ${pid} as the holder of a file it needs, but that task has no such fd`);
      installFds(r, [{ ...fi, fd: at, flags: 0 }], maxFd, session);
    },
  };
}
