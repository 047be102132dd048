// /proc/PID/mountinfo (proc(5)): one mount a line, in the order the kernel lists them (a parent
// before the mounts on it, an overmount after what it covers).
//   36 35 98:0 /mnt1 /mnt2 rw,noatime master:1 - ext3 /dev/root rw,errors=continue

export interface MountInfo {
  mountId: number;
  parentId: number;
  major: number;
  minor: number;
  /** The directory of the filesystem this mount shows at its mount point. */
  root: string;
  mountPoint: string;
  /** Per-mount options (rw, nosuid, relatime, ...). */
  mountOptions: string[];
  /** Peer group this mount is in (shared:N), 0 if none. */
  shared: number;
  /** Peer group this mount receives from (master:N), 0 if none. */
  master: number;
  /** propagate_from:N: the nearest dominant peer group reachable from here, 0 if none. */
  propagateFrom: number;
  unbindable: boolean;
  fsType: string;
  source: string;
  /** Superblock options (rw, size=..., mode=...). */
  superOptions: string[];
}

/** The kernel escapes space, tab, newline and backslash in paths as \ooo octal. */
export function unescapeMountPath(s: string): string {
  return s.replace(/\\([0-7]{3})/g, (_, o: string) => String.fromCharCode(parseInt(o, 8)));
}

export function parseMountInfo(text: string): MountInfo[] {
  const out: MountInfo[] = [];
  for (const line of text.split('\n')) {
    if (!line.trim()) continue;
    const f = line.split(' ');
    const sep = f.indexOf('-', 6);
    if (sep < 0 || f.length < sep + 4) throw new Error(`mountinfo: cannot parse line ${JSON.stringify(line)}`);
    const [major, minor] = f[2]!.split(':').map(Number) as [number, number];
    const m: MountInfo = {
      mountId: Number(f[0]),
      parentId: Number(f[1]),
      major,
      minor,
      root: unescapeMountPath(f[3]!),
      mountPoint: unescapeMountPath(f[4]!),
      mountOptions: f[5]!.split(','),
      shared: 0,
      master: 0,
      propagateFrom: 0,
      unbindable: false,
      fsType: unescapeMountPath(f[sep + 1]!),
      source: unescapeMountPath(f[sep + 2]!),
      superOptions: f.slice(sep + 3).join(' ').split(','),
    };
    for (const opt of f.slice(6, sep)) {
      const [k, v] = opt.split(':');
      if (k === 'shared') m.shared = Number(v);
      else if (k === 'master') m.master = Number(v);
      else if (k === 'propagate_from') m.propagateFrom = Number(v);
      else if (k === 'unbindable') m.unbindable = true;
    }
    out.push(m);
  }
  return out;
}
