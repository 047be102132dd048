// The open files of a restore: what the kinds make before any task (prepareKinds), each open
// file description of files.img opened or created once in the restorer (tasks that share one
// share it), handed to the tasks, given its owner back once every task exists, and closed when
// the tree is back; what the kinds made outside the restorer is undone before the tasks run.
import type { UsernsState } from '../resources/ns/user.js';
import { closeSync } from 'node:fs';
import { hasOwner, restoreFown } from '../resources/files/fown.js';
import { FD_KINDS, recordsOf } from '../resources/files/registry.js';
import type { AnyFdKind, FdPrepareContext } from '../resources/files/fd-kind.js';
import type { ShmemOwner } from '../resources/mm/restore.js';
import type { Tracee } from '../ptrace/index.js';
import type { CheckpointImage } from './images.js';
import { UserError } from '../util/errors.js';
import type { Log } from '../util/log.js';
import type { ProgressMeter } from '../util/progress-meter.js';
import type { TcpRestore } from '../resources/net/tcp-restore.js';

/** State shared by the restore of every task of one checkpoint. */
export interface RestoreSession {
  ckpt: CheckpointImage;
  log: Log;
  /** The trampoline, at the same address in every task (children inherit it). */
  trampoline: bigint;
  shmemOwners: Map<bigint, ShmemOwner>;
  /**
   * A tree in a PID namespace of its own cannot name cryo (pidfd_open from inside fails): its
   * tasks inherit a pidfd of cryo at this fd, above every fd of the images (resources/ns).
   */
  restorerPidfd?: number;
  /** The tree's own user namespace: its id (ids user_ns_id), cryo's fd of it and its maps (resources/ns/user-restore.ts). */
  userns?: { id: number; fd: number; state: UsernsState };
  /** SysV segments made for the restore: id in the image -> id now. */
  sysvIds: Map<number, number>;
  /** Size of each shared anonymous object (see shmemSizes). */
  shmemSizes: Map<bigint, bigint>;
  /** --inherit-fd: our fds that stand for files of the image, by CRIU's key (`pipe:[INO]`). */
  inherit: Map<string, number>;
  /** Open file descriptions, by files.img id: opened once, so tasks that share one share it. */
  files: Map<number, number>;
  /** Records whose kind's afterTable hook ran already (see restore/fds.ts), by file id. */
  afterTableDone: Set<number>;
  /** Every task and thread created so far, for the final release or the cleanup. */
  tracees: Tracee[];
  /** Tasks to leave stopped (SIGSTOP) after release. */
  stopped: number[];
  /** Pages of inherited memory found equal to the parent's and left shared. */
  cowKept: number;
  /** Memory read into the tasks and tasks done, for the caller's progress. */
  progress: ProgressMeter;
  /** The TCP connections and their network lock (--tcp-established). */
  tcp?: TcpRestore;
}

/**
 * Our fd for the open file description `id` of files.img, opened or created on first use and
 * shared by every task (and socket queue) that refers to it.
 */
export function openFile(session: RestoreSession, id: number, what: string): number {
  const { ckpt } = session;
  const ours = session.files;
  let fd = ours.get(id);
  if (fd !== undefined) return fd;
  const registered = ckpt.kindFiles.get(id);
  if (!registered) throw new UserError(`${what} refers to file id ${id}, missing from files.img (or of a kind not supported)`);
  fd = registered.kind.open(registered.record, { what, images: ckpt.kindImages, inherit: session.inherit });
  ours.set(id, fd);
  return fd;
}

/** Owners of the open files, set once every task they may name exists (before any runs). */
export function restoreOwners(session: RestoreSession): void {
  for (const [id, fd] of session.files) {
    const f = session.ckpt.owners.get(id);
    if (hasOwner(f)) restoreFown(fd, f, `file id ${id}`);
  }
}

/** Each kind's last word on its objects before the tasks run (see FdKind.beforeResume). */
export function afterTasksKinds(session: RestoreSession): void {
  for (const [id, { kind, record }] of session.ckpt.kindFiles) {
    const fd = session.files.get(id);
    if (kind.afterTasks && fd !== undefined) kind.afterTasks(record, fd, session.ckpt.kindImages);
  }
}

export function beforeResumeKinds(session: RestoreSession): void {
  for (const [id, { kind, record }] of session.ckpt.kindFiles) {
    const fd = session.files.get(id);
    if (kind.beforeResume && fd !== undefined) kind.beforeResume(record, fd, session.ckpt.kindImages);
  }
}

/** Closes the restore-wide open files once every task has its own. */
export function closeSessionFiles(session: RestoreSession): void {
  // A kind's own fds (a pipe's ends) may be the records' too: each is closed once.
  const held = (FD_KINDS as readonly AnyFdKind[]).flatMap((k) => k.release?.(session.ckpt.kindImages) ?? []);
  const fds = new Set([...session.files.values(), ...held]);
  for (const fd of fds) closeSync(fd);
  session.files.clear();
}

/**
 * Phase 'before-tasks': each kind makes what its records need outside every task (deleted
 * files again, memfds, sockets), in registry order, once the root's namespaces exist; then what
 * each mapped file id opens. `inNetns`: runs a function in the tree's network namespace.
 */
export function prepareKinds(session: RestoreSession, inNetns: <T>(fn: () => T) => T): void {
  const { ckpt } = session;
  const ctx: FdPrepareContext = {
    images: ckpt.kindImages,
    warn: (text) => session.log.warn(text),
    inNetns,
    openFile: (id, what) => openFile(session, id, what),
    ...(session.tcp ? { tcp: session.tcp } : {}),
  };
  for (const kind of FD_KINDS as readonly AnyFdKind[]) kind.prepare?.(recordsOf(kind, ckpt.kindFiles.values()), ctx);
  for (const [id, { kind, record }] of ckpt.kindFiles) {
    const m = kind.mapped?.(record, ckpt.kindImages);
    if (m) ckpt.mappedFiles.set(id, m);
  }
}

/**
 * Undoes what the kinds made outside the restorer (the deleted files are deleted again): before
 * any task runs or sees them, and after a failure. Each kind undoes only what is left.
 */
export function unmakeKinds(session: RestoreSession, failed: boolean): void {
  for (const kind of FD_KINDS as readonly AnyFdKind[]) for (const left of kind.unmake?.(session.ckpt.kindImages, failed) ?? []) session.log.warn(left);
}


/**
 * Each kind's look at its records with the --inherit-fd given, before anything is created: a
 * pipe that led outside the dumped tree needs a stand-in, refused naming what to pass.
 */
export function planKinds(ckpt: CheckpointImage, inherit: Map<string, number>): void {
  for (const kind of FD_KINDS as readonly AnyFdKind[]) kind.plan?.(recordsOf(kind, ckpt.kindFiles.values()), inherit);
}
