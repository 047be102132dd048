// The files image: one entry per open file description or mapped/used file, shared by every
// task and image that refers to it by id.
import type { RegFileData } from './reg.js';

export interface FileRecord {
  type: 'REG';
  id: number;
  reg: RegFileData;
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
  private byPath = new Map<string, number>();

  add(reg: Omit<RegFileData, 'id'>): number {
    const id = this.entries.length + 1;
    this.entries.push({ type: 'REG', id, reg: { ...reg, id } });
    return id;
  }

  /** A file used by path only (exe, mapping, cwd, root): one entry per distinct path+mode. */
  byName(reg: Omit<RegFileData, 'id'>): number {
    const key = `${reg.name}\0${reg.flags}`;
    let id = this.byPath.get(key);
    if (id === undefined) {
      id = this.add(reg);
      this.byPath.set(key, id);
    }
    return id;
  }
}
