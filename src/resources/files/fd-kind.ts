// The interface one kind of fd implements (in the spirit of CRIU's fdtype_ops, but typed): how
// an fd of the kind is recognised, what blocks it, its dump into a files.img record, how the
// record is read back, how the restore makes it again and when, and what a restored fd of the
// kind must show. The kinds are listed in registry.ts; the engine only iterates that list
// (docs/architecture.md has the members in a table, with two worked examples).
import type { file_entry, fd_types } from '../../image/gen/fdinfo_pb.js';
import type { reg_file_entry } from '../../image/gen/regfile_pb.js';
import type { ProcFdinfo } from '../../proc/index.js';
import type { Blocker } from '../../util/blocker.js';
import type { FownData } from './fown.js';
import type { PageRange } from '../mm/page-range.js';
import type { FileScan } from './scan.js';
import type { RestoreTask } from '../context.js';
import type { inventory_entry } from '../../image/gen/inventory_pb.js';
import type { TcpDump } from '../net/tcp-dump.js';
import type { TcpRestore } from '../net/tcp-restore.js';

/** What /proc says about one fd of a task, read once for every question a kind answers. */
export interface FdSeen {
  pid: number;
  fd: number;
  /** readlink of /proc/PID/fd/FD. */
  link: string;
  /** st_mode of what it opens (null: could not stat). */
  mode: number | null;
  /** Its parsed /proc/PID/fdinfo/FD. */
  info: ProcFdinfo;
}

/** Where an fd is: the task (or cryo itself, for a file in flight in a socket queue) and its number. */
export interface FdAt {
  pid: number;
  fd: number;
}

/** The file_entry fields that carry a kind's record (everything but `type` and `id`). */
export type FileEntryField = Exclude<keyof file_entry, 'type' | 'id' | '$typeName' | '$unknown'>;

/** A name of fd_types (CRIU's file type enum), as files.img's `type` spells it. */
export type FileTypeName = keyof typeof fd_types;

/**
 * When the restore makes the kind's fds. 'table': with the task's fd table (opened in the
 * restorer, pulled into the task). 'after-children': once the task's children and threads
 * exist, because the object names a process of the tree (pidfds). 'in-task': at the same
 * time, but opened by the task itself (openInTask): /dev/tty names the opener's controlling
 * terminal, which the restorer cannot open for it.
 */
export type FdPhase = 'table' | 'after-children' | 'in-task';
// Objects of a kind that must exist before any task (deleted files at their paths, memfds, every
// socket with its peer, name and queue) are made by its prepare() hook, phase 'before-tasks';
// its records' fds still come in one of the phases above, opened from what prepare() made.

/** State a kind keeps for the whole dump or the whole restore, under `key` (made on first use). */
export interface KindState {
  memo<T>(key: string, make: () => T): T;
}

/** A fresh store of kind state (one per dump, one per restore). */
export function newKindState(): KindState {
  const state = new Map<string, unknown>();
  return {
    memo<T>(key: string, make: () => T): T {
      if (!state.has(key)) state.set(key, make());
      return state.get(key) as T;
    },
  };
}

/** What a kind's open() may use in the restore. */
export interface FdOpenContext {
  /** What the fd is, for error messages (`fd 5 of pid 42`). */
  what: string;
  /** The kind's images and restore-wide state (as read() had them). */
  images: KindImages;
  /** --inherit-fd: our fds that stand for files of the image, by CRIU's key (`pipe:[INO]`). */
  inherit: Map<string, number>;
}

/** What a kind's dump() may use beyond the fd: the tree-wide view and a way to add a path entry. */
export interface FdDumpContext extends KindState {
  scan: FileScan;
  /**
   * Adds a REG entry (path, flags, mode) to files.img and returns its id (CRIU's regf_id);
   * `more.ghostSource`: the file was deleted, a /proc path that still opens it (saved as a ghost).
   */
  addPath(name: string, flags: number, mode: number, more?: { fown?: FownData; ghostSource?: string }): number;
  /** Says what will not come back exactly as it was, in the dump's log. */
  warn(text: string): void;
  /**
   * Dumps one of cryo's own fds as a file of the tree (a file in flight in a socket's queue) and
   * returns its file id; a description a task also holds shares that task's entry.
   */
  dumpOurFd(fd: number): number;
  /** Keeps one of cryo's fds open until the images are written (kcmp compares later fds with it). */
  keepOpen(fd: number): void;
  /** Adds a record of `kind` that no fd holds (a unix socket's peer outside the tree); returns its id. */
  addRecord(kind: AnyFdKind, dump: (id: number) => unknown): number;
  /** The id of the network namespace of the task being dumped (a socket's ns_id). */
  readonly netNsId: number;
  /** With --tcp-established: the network lock and the connections dumped in repair mode. */
  readonly tcp: TcpDump | null;
}

/** Images beside files.img a kind reads its records with, and per-restore state it keeps. */
export interface KindImages extends KindState {
  /** The entries of an image of the directory, or undefined when it has none. */
  read(name: string): unknown[] | undefined;
  /** The same with each entry's payload (the bytes after it: pipe data), or undefined. */
  readWithPayloads(name: string): { msg: unknown; payload: Buffer }[] | undefined;
  /** A file of the directory as its bytes (a tcp-stream image), or undefined when it has none. */
  readRaw(name: string): Uint8Array | undefined;
  /** The images' inventory.img (how the dump was made: --tcp-close, its network lock). */
  inventory: inventory_entry;
  /** restore --tcp-close: TCP connections come back closed. */
  tcpClose: boolean;
  /** A REG entry of files.img a record names (CRIU's regf_id), wherever it stands in the file. */
  pathEntry(id: number): reg_file_entry | undefined;
  /**
   * A pagemap of the directory (a shmem one: a memfd's contents) with its pages file, its ranges
   * and its size already checked; undefined when the directory has none.
   */
  pagemap(name: string): { pages: PageRange[]; pagesFile: string } | undefined;
  /**
   * Paths the restore makes itself (deleted files made again): opening them is not checked
   * against the dumped file's size and mtime, by fds and by mappings alike.
   */
  madePaths: Set<string>;
  /** --shell-job was given. */
  shellJob: boolean;
  /** files.img has an entry of this id (a file a socket's queued message carries). */
  isFile(id: number): boolean;
}

/** What a kind's prepare() may use: its images and restore-wide state, and the restore's log. */
export interface FdPrepareContext {
  images: KindImages;
  warn(text: string): void;
  /**
   * Runs `fn` in the tree's network namespace (its own, when it has one): a socket belongs to
   * the namespace of the thread that makes it.
   */
  inNetns<T>(fn: () => T): T;
  /**
   * Our fd of another file of the images (a file in flight in a socket's queue), opened as a
   * task's would be; a kind earlier in the registry has prepared it already.
   */
  openFile(id: number, what: string): number;
  /** The TCP connections' restore and its network lock (--tcp-established), when the images hold any. */
  tcp?: TcpRestore;
}

/** What a mapping of a file opens: a path (an image's, or our fd's through /proc) and its size. */
export interface MappedPath {
  name: string;
  size?: bigint;
}

/**
 * Contents a kind saves as a shmem pagemap with the memory (a memfd's), written by the dump's
 * page writer with its progress and interrupt checks: `bytes` for the progress total, `copy`
 * hands the non-zero pages to `sink` in order and returns them as ranges of page offsets.
 */
export interface KindPages {
  pagemap: string;
  bytes: number;
  copy(sink: (chunk: Buffer) => void): PageRange[];
}

/**
 * An image a kind writes beside files.img from all its records (tty-info.img): framed entries,
 * or `raw` bytes of a format of its own (a tcp-stream image).
 */
export type KindImage =
  | {
      file: string;
      /** Its magic's name in image/magic.ts. */
      kind: string;
      /** Messages, or { msg, payload } for an image whose entries carry bytes. */
      entries: unknown[];
    }
  | { file: string; raw: Uint8Array };

/** What a kind's afterTable() may use: the task (its table whole) and that table. */
export interface FdTableContext {
  task: RestoreTask;
  /** The task's fds, with FD_CLOEXEC in bit 0 of `flags` (fdinfo_entry). */
  table: { fd: number; flags: number }[];
  /** The task's highest fd: temporaries go above it. */
  maxFd: number;
  /**
   * Puts at fd `at` of this task (replacing what is there) the open file description that task
   * `pid` of the images has at its fd `fd`: a file this task holds no fd of (an epoll's target
   * that only another task kept). Throws when the images give that task no such fd.
   */
  pullFile(pid: number, fd: number, at: number): void;
}

/** Keys and values the verification compares, set by the image side and by the /proc side. */
export interface FdObservation {
  set(key: string, value: string | { set: string[] } | { atLeast: bigint | number }): void;
}

export interface FdKind<R extends { id: number; flags: number; fown?: FownData }> {
  /** The kind as users and the verification name it ('pidfd'). */
  readonly name: string;
  /** Its file_entry type and the file_entry field that holds its record. */
  readonly type: FileTypeName;
  readonly field: FileEntryField;
  readonly phase: FdPhase;
  /** A kernel object whose access mode is the kernel's (only O_NONBLOCK is compared). */
  readonly object: boolean;
  /**
   * Whether an fd is of this kind, from its link (and mode). `at`: where the fd is, when the
   * link alone does not tell (every socket is `socket:[N]`: its family comes from the fd).
   */
  recognise(link: string, mode: number | null, at?: FdAt): boolean;
  /** Why this fd cannot be dumped (null if it can). */
  blocker(f: FdSeen, scan: FileScan): Blocker | null;
  /** What the fd is, in words, for check's report when its link does not say (a socket's addresses). */
  describe?(f: FdSeen, scan: FileScan): string;
  /** The record of the fd's open file description, file id `id`; `flags` without O_CLOEXEC. */
  dump(f: FdSeen, id: number, flags: number, fown: FownData, ctx: FdDumpContext): R;
  /** Images beside files.img made from all the dump's records of the kind (and its dump state). */
  images?(records: R[], state: FdDumpContext): KindImage[];
  /** Contents saved as shmem pagemaps beside the memory, from the dump state (memfd pages). */
  pages?(state: KindState): KindPages[];
  /** The record from a files.img entry's field (already known to be set); throws on nonsense. */
  read(entry: unknown, id: number, images: KindImages): R;
  /** Once every record is read: what the kind's own images hold must belong to them (throws). */
  validate?(records: R[], images: KindImages): void;
  /**
   * Before the restore makes anything: the kind's records with the --inherit-fd given; throws
   * when a record needs a stand-in that was not given (a pipe that led outside the tree).
   */
  plan?(records: R[], inherit: Map<string, number>): void;
  /**
   * Phase 'before-tasks': once the root's namespaces exist and before any task is made, makes
   * what the kind's records need outside every task (deleted files again at their paths, memfds
   * with their contents, sockets: all of them at once, so peers find each other). What it made is kept in `ctx.images.memo`, for open(), mapped(),
   * release() and unmake(); a failure part-way leaves unmake() able to undo what was made.
   */
  prepare?(records: R[], ctx: FdPrepareContext): void;
  /**
   * Undoes what prepare() made outside the restorer (removes the deleted files made again):
   * just before the tasks run, and again after a failed restore (then only what is left).
   * Returns what could not be undone, for the log. `failed`: the restore failed (what stays with
   * a restored tree, a named message queue, is removed only then).
   */
  unmake?(images: KindImages, failed: boolean): string[];
  /** What a mapping of the record's file opens (once prepare() ran): a file's path, a memfd's fd. */
  mapped?(rec: R, images: KindImages): MappedPath | undefined;
  /** The phase of one record, when it is not the kind's `phase` for all of them. */
  phaseOf?(rec: R): FdPhase;
  /** For phase 'in-task': makes the fd `fd` in the task itself. */
  openInTask?(rec: R, fd: number, t: FdTableContext): void;
  /** Our fd on a new open file description like the record's, in the restorer. */
  open(rec: R, ctx: FdOpenContext): number;
  /**
   * Runs once the task's whole fd table is in place, for the first task that holds the record
   * (an epoll registers its targets). `fd`: the record's fd number in that task.
   */
  afterTable?(rec: R, fd: number, t: FdTableContext): void;
  /**
   * Session hooks, for kinds whose objects belong to a session (a controlling terminal): run in
   * every restored task, `afterSetsid` once it is in its session and group and before it forks
   * (a process gets a controlling terminal only from TIOCSCTTY or at fork), `afterChildren`
   * once its children and their groups exist (the terminal's foreground group).
   */
  afterSetsid?(t: RestoreTask, images: KindImages): void;
  afterChildren?(t: RestoreTask, images: KindImages): void;
  /**
   * Runs in the restorer on its own fd of the record once every task of the tree exists with its
   * fds, before the verification compares them with the images: what only the whole tree makes
   * possible (the unix kind sends the messages that name their senders, who all exist now; then
   * a socket gets its filter, which its queued messages have passed already).
   */
  afterTasks?(rec: R, ourFd: number, images: KindImages): void;
  /**
   * Runs in the restorer on its own fd of the record just before the tasks run, once the
   * restore's temporary files are gone (an inotify instance drops the events the restore caused).
   */
  beforeResume?(rec: R, ourFd: number, images: KindImages): void;
  /**
   * Hands back the fds the kind made for the whole restore (a pipe's ends, a FIFO's keeper, the
   * sockets prepare() made), once every task has its own fds or the restore failed: the engine
   * closes them with the records' own, each once (an fd open() handed out is among both).
   */
  release?(images: KindImages): number[];
  /**
   * The verification's name of one fd of the kind when it is not `name`: `nameOf` from the mode
   * /proc shows, `recordName` from the record (regular files 'file', directories 'dir',
   * character devices 'device').
   */
  nameOf?(mode: number): string;
  recordName?(rec: R): string;
  /** The record's fd is whatever --inherit-fd gave in its place: nothing is expected of it. */
  inherited?(rec: R): boolean;
  /** What a restored fd of the kind must show, beyond kind and flags (from the image). */
  expect?(rec: R, s: FdObservation, key: string): void;
  /**
   * What an fd of the kind shows (from /proc: its fdinfo, and its link and mode), under the same
   * keys as expect(). `seen.at`: where the fd is (the /proc side always says).
   */
  observe?(info: ProcFdinfo, s: FdObservation, key: string, seen: { link: string; mode: number; at?: FdAt }): void;
}

/** A kind with its record type forgotten, as the registry holds it. */
// eslint-disable-next-line @typescript-eslint/no-explicit-any
export type AnyFdKind = FdKind<any>;

/** The first value of an fdinfo line `key:` (throws when the kernel did not show it). */
export function fdinfoField(info: ProcFdinfo, key: string): string {
  const v = info.extra.get(key)?.[0];
  if (v === undefined) throw new Error(`fdinfo has no "${key}"`);
  return v;
}

/** Status flags the object-creating calls (eventfd2, signalfd4, timerfd_create) accept. */
export const CREATE_FLAGS = 0o4000 | 0o2000000; // O_NONBLOCK | O_CLOEXEC
