// What a restore works from: the checkpoint as read and cross-checked by images.ts, each task's
// images, the zombies, and the tree-wide objects (files, pipes, sockets, segments ...). Types only,
// so that the reader and its validation (validate.ts) both use them without importing each other.
import type { RootNamespaces } from '../resources/ns/restore.js';
import type { inventory_entry } from '../image/gen/inventory_pb.js';
import type { pstree_entry } from '../image/gen/pstree_pb.js';
import type { core_entry } from '../image/gen/core_pb.js';
import type { mm_entry } from '../image/gen/mm_pb.js';
import type { fs_entry } from '../image/gen/fs_pb.js';
import type { fdinfo_entry } from '../image/gen/fdinfo_pb.js';
import type { reg_file_entry } from '../image/gen/regfile_pb.js';
import type { CgroupMember } from '../resources/task/cgroup.js';
import type { cg_controller_entry } from '../image/gen/cgroup_pb.js';
import type { FownData } from '../resources/files/fown.js';
import type { FileLockData } from '../resources/files/locks.js';
import type { ShmImage } from '../resources/mm/sysv-shm.js';
import type { MemoryImage, MappedFile } from '../resources/mm/restore.js';
import type { AnyFdKind, KindImages } from '../resources/files/fd-kind.js';
import type { TcpConnectionRecord } from '../resources/net/tcp-repair.js';

export interface TaskImage {
  pid: number;
  /** Threads other than the leader, in pstree order. */
  threads: { tid: number; core: core_entry }[];
  pstree: pstree_entry;
  core: core_entry;
  mm: mm_entry;
  fs: fs_entry;
  fdinfo: fdinfo_entry[];
  memory: MemoryImage;
  /** Which fd table, fs context, ... the task has (equal ids: shared with the parent). */
  ids: NonNullable<core_entry['ids']>;
}

/** A zombie in the tree: only its exit status is restored. */
export interface ZombieImage {
  pid: number;
  ppid: number;
  pgid: number;
  sid: number;
  exitStatus: number;
  comm: string;
  /** Its PIDs below the dumper's level (pstree cryo_ns_pid): made again in its PID namespace. */
  nsPid: number[];
}

export interface CheckpointImage {
  dir: string;
  inventory: inventory_entry;
  /** Live tasks, parents before children (the pstree order). */
  tasks: TaskImage[];
  zombies: ZombieImage[];
  /** The REG entries of files.img, by file id: the paths fds, mappings, exe, cwd and root name. */
  files: Map<number, reg_file_entry>;
  /** Files of the registered kinds (resources/files/registry.ts), by file id. */
  kindFiles: Map<number, { kind: AnyFdKind; record: { id: number; flags: number; fown?: FownData } }>;
  /** What the registered kinds read beside files.img and keep for the restore (their session hooks get it). */
  kindImages: KindImages;
  /**
   * The inet sockets that are TCP connections, by file id, with their tcp-stream images (read by
   * the inet kind's validate, resources/net/tcp-restore.ts), for the network lock.
   */
  tcpConnections: Map<number, TcpConnectionRecord>;
  /** The TCP connections that come back closed (restore --tcp-close). */
  tcpClosed: number;
  /**
   * What each file id a mapping names opens (a path, our memfd), filled once the kinds have
   * made their objects (restore/files.ts prepareKinds); every task's memory.files is this map.
   */
  mappedFiles: Map<number, MappedFile>;
  /** seccomp.img: every filter, each naming the one installed before it (prev: index + 1). */
  seccompFilters: { filter: Uint8Array; prev: number; flags: number }[];
  /** cgroup.img: the cgroups of each set, by set id (core.tc.cg_set). */
  cgroups: Map<number, CgroupMember[]>;
  /** cgroup.img's controllers: the tree's cgroups with their settings (dump --manage-cgroups). */
  cgroupDirs: cg_controller_entry[];
  /** Owners of open files (F_SETOWN_EX, F_SETSIG), by file id (a FIFO's, from its path's entry). */
  owners: Map<number, FownData>;
  /** The root's own PID, UTS and IPC namespaces (resources/ns), with what was in them. */
  namespaces: RootNamespaces;
  /** SysV shared memory segments the tree attaches (or, in its own IPC namespace, all of them). */
  sysvShm: ShmImage[];
  /** File locks to take again, by owner pid. */
  locks: Map<number, FileLockData[]>;
}
