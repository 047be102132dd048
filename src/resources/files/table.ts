// The files image: one entry per open file description or mapped/used file, shared by every
// task and image that refers to it by id.
import { regKind, regRecord, type RegFileData } from './reg.js';
import { NO_FOWN, type FownData } from './fown.js';
import type { FileScan } from './scan.js';
import { statSync } from 'node:fs';
import { O } from '../../sys/index.js';
import { memfdKind, memfdRecord } from './memfd.js';
import type { FileLockData } from './locks.js';
import { newKindState, type AnyFdKind, type FdDumpContext } from './fd-kind.js';
import type { TcpDump } from '../net/tcp-dump.js';

/** The record of a registered kind (registry.ts), written into file_entry's field `kind.field`. */
export interface FileRecord {
  id: number;
  kind: AnyFdKind;
  record: unknown;
}

/** An fd already dumped, to find others that share its open file description (kcmp). */
export interface SeenFd {
  pid: number;
  fd: number;
  ino: number;
  dev: number;
  id: number;
}

export class FileTable {
  readonly entries: FileRecord[] = [];
  /** Every fd dumped so far, across all tasks of the tree. */
  readonly seenFds: SeenFd[] = [];
  /** Fds of ours (in flight in socket queues) that must stay open until the dump is written. */
  readonly keepOpen: number[] = [];
  /** File locks held through the fds dumped (--file-locks). */
  readonly locks: FileLockData[] = [];
  /** fd tables dumped so far (by files id): a table shared by CLONE_FILES is dumped once. */
  readonly dumpedTables = new Set<number>();
  /** Build-ids of the ELF files seen, by dev:ino (undefined: not ELF, or none). */
  readonly buildIds = new Map<string, number[] | undefined>();
  /** Id of the network namespace the sockets live in (the tree's, which is cryo's own). */
  netNsId = 0;
  /** With --tcp-established: the network lock and the connections dumped in repair mode. */
  tcp: TcpDump | null = null;
  /** What will not come back exactly as it was, for the log. */
  readonly warnings: string[] = [];

  /** The MEMFD entry each mapped memfd inode got (mappings share one entry per inode). */
  private memfdMapped = new Map<string, number>();

  /** What a registered kind's dump() and images() are given besides the fd. */
  readonly dumpContext: FdDumpContext;

  /**
   * `scan`: the tree-wide view the fds are judged against (sockets, user options); `dumpOurFd`:
   * dumps one of cryo's fds into this table (fds.ts dumpFd), for the fds in flight in a queue.
   */
  constructor(readonly scan: FileScan, dumpOurFd: (fd: number, files: FileTable) => number) {
    const table = this; // the getter below reads the table, not the context
    this.dumpContext = {
      scan,
      // A path entry a kind refers to (a tty's /dev/pts/N, a FIFO's path: CRIU's regf_id).
      addPath: (name, flags, mode, more) => this.add({ flags, pos: 0n, fown: more?.fown ?? NO_FOWN, name, mode }, more?.ghostSource),
      warn: (text) => this.warnings.push(text),
      dumpOurFd: (fd) => dumpOurFd(fd, this),
      keepOpen: (fd) => void this.keepOpen.push(fd),
      addRecord: (kind, dump) => this.addKind(kind, dump),
      get netNsId() {
        return table.netNsId;
      },
      get tcp() {
        return table.tcp;
      },
      // What the registered kinds keep for the whole dump (a pipe's bytes), by their keys.
      ...newKindState(),
    };
  }

  /** A memfd mapping (no fd needed): one read-write entry per inode. */
  mappedMemfd(source: string, path: string, fown: FownData): number {
    const st = statSync(source);
    const key = `${st.dev}:${st.ino}`;
    let id = this.memfdMapped.get(key);
    if (id === undefined) {
      id = this.addKind(memfdKind, (fileId) => memfdRecord(this.dumpContext, fileId, source, path, O.RDWR, 0n, fown));
      this.memfdMapped.set(key, id);
    }
    return id;
  }

  /** A registered kind's record; `dump` makes it for the file id given. */
  addKind(kind: AnyFdKind, dump: (id: number) => unknown): number {
    const id = this.entries.length + 1;
    // In place before dump() runs: it may add entries of its own (a tty's path, addPath).
    const entry: FileRecord = { id, kind, record: null };
    this.entries.push(entry);
    entry.record = dump(id);
    return id;
  }


  private byPath = new Map<string, number>();

  /**
   * A REG entry (a path the images name: a mapping, exe, cwd, root, a kind's path);
   * `ghostSource`: the file was deleted, a /proc path that still opens it.
   */
  add(reg: Omit<RegFileData, 'id'>, ghostSource?: string): number {
    return this.addKind(regKind, (id) => regRecord(id, reg, ghostSource, this.dumpContext));
  }

  /** A file used by path only (exe, mapping, cwd, root): one entry per distinct path+mode. */
  byName(reg: Omit<RegFileData, 'id'>, ghostSource?: string): number {
    const key = `${reg.name}\0${reg.flags}${ghostSource ? '\0deleted' : ''}`;
    let id = this.byPath.get(key);
    if (id === undefined) {
      id = this.add(reg, ghostSource);
      this.byPath.set(key, id);
    }
    return id;
  }
}
