// Regular files, directories and stateless character devices (the kind 'file'): a REG entry of
// files.img (path, flags, position, and a stamp of size, mtime and build-id), opened again by its
// path in the restorer and handed to the task. REG entries are also the path table the rest of
// the images name (exe, cwd, root, mapped files, a FIFO's or a tty's path: FileTable.add), and
// a deleted file's entry has its contents saved beside it (ghosts.ts): made again before the
// tasks, removed before they run.
import { openSync, closeSync, statSync } from 'node:fs';
import { reg_file_entrySchema } from '../../image/gen/regfile_pb.js';
import { hasField } from '../../image/presence.js';
import { buildIdWords } from './build-id.js';
import { O, F, sys, S_IF } from '../../sys/index.js';
import { UserError } from '../../util/errors.js';
import type { Blocker } from '../../util/blocker.js';
import { hostPath, ownMountNs } from '../mnt/root-path.js';
import type { FownData } from './fown.js';
import type { FdKind, FdSeen, FdDumpContext, FdOpenContext, FdPrepareContext, KindImages, KindState } from './fd-kind.js';
import type { FileScan } from './scan.js';
import { deletedPath, ghostBlocker } from './ghost.js';
import { lostReason, unlinkedName } from './other-name.js';
import { saveGhost, ghostImages, readGhosts, makeGhosts, unmakeGhosts, ghostTmpfiles } from './ghosts.js';
import { isMemfd } from './memfd.js';
import { onDumperMount, restoreSidePath } from './dumper-mount.js';
import { onPseudoFs, procOwnerBlocker, namesProcess } from './pseudo-fs.js';

export interface RegFileData {
  id: number;
  flags: number;
  pos: bigint;
  fown: FownData;
  name: string;
  mode?: number;
  size?: bigint;
  buildId?: number[];
  /** mtime at dump time (ns), cryo's own field: a restore refuses a file changed since. */
  cryoMtimeNs?: bigint;
  /** On a mount of the dumper's mount namespace: opened from the restorer's root (dumper-mount.ts). */
  cryoDumperRoot?: boolean;
}

/** __O_TMPFILE: kept in the status flags of a file made with O_TMPFILE (with O_DIRECTORY). */
const O_TMPFILE_BIT = 0o20000000;

/**
 * A description's status flags as they matter once it is open: an O_TMPFILE file keeps the
 * creation bits (__O_TMPFILE | O_DIRECTORY), which would make opening it again fail (ENOTDIR).
 */
function openFlags(flags: number): number {
  return flags & O_TMPFILE_BIT ? flags & ~(O_TMPFILE_BIT | O.DIRECTORY) : flags;
}

/**
 * Opens a file description as the image describes it, in the restorer, with its position set.
 * Returns our fd (O_CLOEXEC on our side; the task's fd flags are set when it is installed).
 */
function openRegFile(reg: Pick<RegFileData, "name" | "flags" | "pos" | "mode" | "cryoDumperRoot">): number {
  const isDir = reg.mode !== undefined && (reg.mode & S_IF.MT) === S_IF.DIR;
  const flags = (openFlags(reg.flags) & ~(O.CREAT | O.EXCL | O.TRUNC | O.NOCTTY | O.DIRECTORY)) | O.CLOEXEC | (isDir ? O.DIRECTORY : 0);
  let fd: number;
  try {
    fd = openSync(openPath(reg), flags);
  } catch (e) {
    throw new UserError(`cannot open ${reg.name}: ${(e as Error).message}`);
  }
  try {
    if (reg.pos !== 0n) sys('lseek', [fd, reg.pos, 0], reg.name);
  } catch (e) {
    closeSync(fd);
    throw e;
  }
  return fd;
}

/** What a file's entry records about it that a restore checks: size, mtime, build-id. */
export type FileStamp = { name: string; size?: bigint; cryoMtimeNs?: bigint; buildId?: number[]; cryoDumperRoot?: boolean };

/** Where the restorer opens an entry's file: from its own root when it was on the dumper's mount, else as the tree sees it. */
const openPath = (f: Pick<FileStamp, 'name' | 'cryoDumperRoot'>): string => (f.cryoDumperRoot ? f.name : hostPath(f.name));

/**
 * Why the file at the entry's path is not the one that was dumped (null if it is, as far as the
 * image can tell): a different size or mtime, or, for an ELF file, another build-id.
 */
export function changedSince(f: FileStamp): string | null {
  const has = (field: string) => hasField(reg_file_entrySchema, f, field);
  if (!has('size') && !has('cryoMtimeNs') && !f.buildId?.length) return null;
  let st;
  try {
    st = statSync(openPath(f), { bigint: true });
  } catch (e) {
    return `${f.name} is gone: ${(e as Error).message}`;
  }
  if (!st.isFile()) return null;
  if (has('size') && st.size !== f.size) return `${f.name} changed since the dump (size ${st.size}, was ${f.size})`;
  if (has('cryoMtimeNs') && st.mtimeNs !== f.cryoMtimeNs) return `${f.name} changed since the dump (modified after it)`;
  if (f.buildId?.length) {
    const now = buildIdWords(openPath(f));
    if (!now || now.join(',') !== f.buildId.join(',')) return `${f.name} changed since the dump (another build-id: a different binary)`;
  }
  return null;
}

/**
 * The stamp of a regular file for its entry: size, mtime and (with `buildIds`, a per-dump cache
 * by dev:ino, for executables and mapped files) its build-id. `path` may be a /proc link.
 */
export function fileStamp(path: string, buildIds?: Map<string, number[] | undefined>): { size: bigint; cryoMtimeNs: bigint; buildId?: number[] } {
  const st = statSync(path, { bigint: true });
  const stamp = { size: st.size, cryoMtimeNs: st.mtimeNs };
  if (!buildIds) return stamp;
  const key = `${st.dev}:${st.ino}`;
  if (!buildIds.has(key)) buildIds.set(key, buildIdWords(path));
  const id = buildIds.get(key);
  return id ? { ...stamp, buildId: id } : stamp;
}

/** Character devices whose state is nothing more than being open. */
const STATELESS_DEVICES = new Set(['/dev/null', '/dev/zero', '/dev/full', '/dev/random', '/dev/urandom']);

/** What the verification calls an fd on a path, from the mode of what it opens. */
export function pathKindName(mode: number): 'file' | 'dir' | 'device' | 'fifo' {
  const type = mode & S_IF.MT;
  if (type === S_IF.DIR) return 'dir';
  if (type === S_IF.CHR || type === S_IF.BLK) return 'device';
  if (type === S_IF.IFO) return 'fifo';
  return 'file';
}

/**
 * The REG record of file `id`; `ghostSource`: the file was deleted, a /proc path that still opens
 * it (its contents are saved, once per inode, in `state`).
 */
export function regRecord(id: number, reg: Omit<RegFileData, 'id'>, ghostSource: string | undefined, state: KindState): RegFileData {
  if (ghostSource) saveGhost(state, id, ghostSource);
  return { ...reg, id };
}

/**
 * A regular file or directory is opened again by its path on restore, so the path must lead to
 * the inode the fd has open (in the task's root). It does not for a path overmounted since it
 * was opened, or a file of a mount the task cannot see by path: refused
 * here, before anything is touched, rather than failing the restore of a killed tree.
 * The link is the path from cryo's root: in cryo's own mount namespace it is looked up as it is
 * (a chrooted task's files are below its root, and the restore opens them so); in another one,
 * through the task's root.
 */
function pathBlocker(pid: number, fd: number, link: string): Blocker | null {
  const proc = `/proc/${pid}/fd/${fd}`;
  let open;
  try {
    open = statSync(proc, { bigint: true });
  } catch {
    return null; // closed meanwhile
  }
  let named = null;
  try {
    if (link.startsWith('/')) named = statSync(ownMountNs(pid) ? `/proc/${pid}/root${link}` : link, { bigint: true });
  } catch {
    /* nothing there */
  }
  if (named && named.dev === open.dev && named.ino === open.ino) return null;
  if (!named && !stillOpen(proc)) return null;
  const where = named ? 'to another file' : 'nowhere';
  return { pid, fd, kind: 'file', reason: `${link}: its path leads ${where} (overmounted since it was opened, or on a mount the task cannot reach by path) — not supported` };
}

/**
 * Whether an fd seen open is open still. A task that began to exit after its fd was looked at
 * (a fork-heavy tree under --freeze-cgroup: an exiting task is not frozen) has lost its root by
 * the time its path is looked up, and its files before that (do_exit: exit_files, then exit_fs):
 * its path leading nowhere is then no blocker, the task is about to be a zombie.
 */
function stillOpen(proc: string): boolean {
  try {
    statSync(proc);
    return true;
  } catch {
    return false;
  }
}

/**
 * A stateless device is opened again by its path too, and must be the same device there (in the
 * task's root: a container's /dev/null may be missing, or a regular file, when the fd was opened
 * before its pivot_root).
 */
function devicePathBlocker(pid: number, fd: number, link: string): Blocker | null {
  let open;
  try {
    open = statSync(`/proc/${pid}/fd/${fd}`, { bigint: true });
  } catch {
    return null; // closed meanwhile
  }
  let named = null;
  try {
    named = statSync(restoreSidePath(pid, link), { bigint: true });
  } catch {
    /* nothing there */
  }
  if (named?.isCharacterDevice() && named.rdev === open.rdev) return null;
  if (!named && !stillOpen(`/proc/${pid}/fd/${fd}`)) return null;
  const where = named ? 'to another file' : 'nowhere';
  return { pid, fd, kind: 'device', reason: `character device ${link}: its path leads ${where} in the task's root (opened before a pivot_root or chroot, or overmounted since) — not supported` };
}

/** The verification's name of a record's fd (an entry without a mode is a regular file's). */
const regName = (rec: RegFileData) => pathKindName(hasField(reg_file_entrySchema, rec, 'mode') ? rec.mode! : S_IF.REG);

export const regKind = {
  name: 'file' as const,
  type: 'REG',
  field: 'reg',
  phase: 'table',
  // A /proc/N/ file is opened once N exists: its holder's children and their branches do then (pseudo-fs.ts).
  phaseOf: (rec: RegFileData) => (namesProcess(rec.name) ? 'after-children' : 'table'),
  object: false,
  // Whatever is opened by a path and left by the other kinds: memfds and secret memory have
  // paths of their own, FIFOs and ttys are listed before this kind in the registry.
  recognise: (link: string, mode: number | null) =>
    mode !== null && ([S_IF.REG, S_IF.DIR, S_IF.CHR] as number[]).includes(mode & S_IF.MT) && !link.startsWith('anon_inode:') && !isMemfd(link) && !link.startsWith('/secretmem'),
  blocker(f: FdSeen, scan: FileScan): Blocker | null {
    const { pid, fd, link } = f;
    const type = f.mode! & S_IF.MT;
    const gone = deletedPath(link);
    const unlinked = gone !== null ? unlinkedName(pid, gone, `/proc/${pid}/fd/${fd}`) : null;
    if (unlinked?.kind === 'lost') return { pid, fd, kind: 'file', reason: lostReason(gone!, unlinked.links) };
    if (unlinked?.kind === 'deleted') return ghostBlocker({ pid, fd }, gone!, `/proc/${pid}/fd/${fd}`, scan.ghostLimit);
    // A file from cryo's own mount namespace (a container's fd opened before its unshare) is opened from cryo's root.
    if ((type === S_IF.REG || type === S_IF.DIR) && unlinked === null && onDumperMount(f)) return null;
    if ((type === S_IF.REG || type === S_IF.DIR) && unlinked === null && onPseudoFs(`/proc/${pid}/fd/${fd}`)) {
      return procOwnerBlocker(pid, fd, link, scan.tree) ?? pathBlocker(pid, fd, link);
    }
    if (type === S_IF.REG || type === S_IF.DIR) return pathBlocker(pid, fd, unlinked?.path ?? link);
    if (!STATELESS_DEVICES.has(link)) return { pid, fd, kind: 'device', reason: `character device ${link} — not supported` };
    return onDumperMount(f) ? null : devicePathBlocker(pid, fd, link);
  },
  dump(f: FdSeen, id: number, flags: number, fown: FownData, ctx: FdDumpContext): RegFileData {
    const source = `/proc/${f.pid}/fd/${f.fd}`;
    const unlinked = deletedPath(f.link);
    // Unlinked from this name but linked under another: opened by that one (other-name.ts).
    const other = unlinked !== null ? unlinkedName(f.pid, unlinked, source) : null;
    const gone = other?.kind === 'linked' ? null : unlinked;
    const name = other?.kind === 'linked' ? other.path : (gone ?? f.link);
    const mode = f.mode!;
    // A log others may append to is not held to its size: O_APPEND writes go to the end anyway;
    // nor is a file of the kernel's (pseudo-fs.ts), whose size and mtime are the moment's.
    const stamp = (mode & S_IF.MT) === S_IF.REG && !(flags & O.APPEND) && !onPseudoFs(source) ? fileStamp(source) : {};
    const dumperRoot = unlinked === null && onDumperMount(f) ? { cryoDumperRoot: true } : {};
    return regRecord(id, { flags, pos: f.info.pos, fown, name, mode, ...stamp, ...dumperRoot }, gone !== null ? source : undefined, ctx);
  },
  images: (_records: RegFileData[], state: KindState) => ghostImages(state),
  // The entry as decoded: its optional fields answer hasField from the wire (changedSince).
  read: (entry: unknown) => entry as RegFileData,
  validate: (_records: RegFileData[], images: KindImages) => void readGhosts(images),
  prepare(records: RegFileData[], ctx: FdPrepareContext): void {
    // A file made with O_TMPFILE is made so again; its description is the one the tasks get.
    makeGhosts(ctx.images, (path) => records.find((r) => r.name === path && r.flags & O_TMPFILE_BIT)?.flags);
  },
  unmake: (images: KindImages) => unmakeGhosts(images),
  open(rec: RegFileData, ctx: FdOpenContext): number {
    const changed = ctx.images.madePaths.has(rec.name) ? null : changedSince(rec);
    if (changed) throw new UserError(`${ctx.what}: ${changed}`);
    const tmpfiles = ghostTmpfiles(ctx.images);
    const tmp = rec.flags & O_TMPFILE_BIT ? tmpfiles.get(rec.name) : undefined;
    if (tmp === undefined) return openRegFile(rec);
    tmpfiles.delete(rec.name);
    sys('lseek', [tmp, rec.pos, 0], `${ctx.what}: position`);
    sys('fcntl', [tmp, F.SETFL, rec.flags & ~(O.ACCMODE | O.CLOEXEC)]);
    return tmp;
  },
  mapped: (rec: RegFileData) => ({ name: rec.name, ...(rec.size ? { size: rec.size } : {}) }),
  release(images: KindImages): number[] {
    const tmpfiles = ghostTmpfiles(images);
    const fds = [...tmpfiles.values()];
    tmpfiles.clear();
    return fds;
  },
  nameOf: (mode: number) => pathKindName(mode),
  recordName: regName,
  expect(rec: RegFileData, s, key) {
    // A directory's position is a filesystem cookie; an O_TMPFILE file is named after its inode
    // (dir/#INO), which a new one cannot keep.
    if (regName(rec) === 'file') s.set(`${key} pos`, String(rec.pos));
    if (!(rec.flags & O_TMPFILE_BIT)) s.set(`${key} path`, rec.name);
  },
  observe(info, s, key, { link, mode }) {
    if (pathKindName(mode) === 'file') s.set(`${key} pos`, String(info.pos));
    s.set(`${key} path`, deletedPath(link) ?? link);
  },
} satisfies FdKind<RegFileData>;
