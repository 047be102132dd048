// Mount flags (MS_*, linux/mount.h) to and from mountinfo's option words.
export const MS = {
  RDONLY: 1,
  NOSUID: 2,
  NODEV: 4,
  NOEXEC: 8,
  REMOUNT: 32,
  NOSYMFOLLOW: 256,
  NOATIME: 1024,
  NODIRATIME: 2048,
  BIND: 4096,
  REC: 16384,
  UNBINDABLE: 1 << 17,
  PRIVATE: 1 << 18,
  SLAVE: 1 << 19,
  SHARED: 1 << 20,
  RELATIME: 1 << 21,
  STRICTATIME: 1 << 24,
} as const;

export const MNT_DETACH = 2;

/** move_mount(2)'s flags: the two fds' own mounts (empty paths), and join the first's peer group. */
export const MOVE_MOUNT = { F_EMPTY_PATH: 0x4, T_EMPTY_PATH: 0x40, SET_GROUP: 0x100 } as const;
/** A path argument left empty names the fd's own file (mount_setattr). */
export const AT_EMPTY_PATH = 0x1000;

const WORDS: Record<string, number> = {
  ro: MS.RDONLY, nosuid: MS.NOSUID, nodev: MS.NODEV, noexec: MS.NOEXEC, nosymfollow: MS.NOSYMFOLLOW,
  noatime: MS.NOATIME, nodiratime: MS.NODIRATIME, relatime: MS.RELATIME,
};

/** What a remount of the per-mount flags takes of an entry's flags (not its propagation). */
export const PER_MOUNT_FLAGS = Object.values(WORDS).reduce((a, b) => a | b, 0) | MS.STRICTATIME;

/** The per-mount flags of mountinfo's 6th field. No atime word means strictatime. */
export function mountFlags(options: string[]): number {
  let f = 0;
  for (const o of options) f |= WORDS[o] ?? 0;
  if (!(f & (MS.NOATIME | MS.RELATIME))) f |= MS.STRICTATIME;
  return f;
}

/** Superblock options without rw/ro (those are sb_flags): the data string a new mount takes. */
export function superData(options: string[]): { sbFlags: number; data: string } {
  return { sbFlags: options.includes('ro') ? MS.RDONLY : 0, data: options.filter((o) => o !== 'rw' && o !== 'ro').join(',') };
}

/** The kernel's encoding of a device number (as in mnt_entry.root_dev): major << 20 | minor. */
export const kdev = (major: number, minor: number): number => ((major << 20) | minor) >>> 0;
