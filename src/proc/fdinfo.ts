// /proc/PID/fdinfo/N: position, open flags, mount id and the kind-specific lines after them.

/** /proc/PID/fdinfo/N parsed (not the image's fdinfo_entry, which is an fd table slot). */
export interface ProcFdinfo {
  pos: bigint;
  flags: number;
  mntId: number;
  ino: number;
  /** Every other line, key -> rest of line (eventfd-count, tfd, inotify ...). */
  extra: Map<string, string[]>;
}

export function parseFdinfo(text: string): ProcFdinfo {
  const info: ProcFdinfo = { pos: 0n, flags: 0, mntId: 0, ino: 0, extra: new Map() };
  for (const line of text.split('\n')) {
    const i = line.indexOf(':');
    if (i <= 0) continue;
    const key = line.slice(0, i);
    const val = line.slice(i + 1).trim();
    switch (key) {
      case 'pos':
        info.pos = BigInt(val);
        break;
      case 'flags':
        info.flags = parseInt(val, 8);
        break;
      case 'mnt_id':
        info.mntId = Number(val);
        break;
      case 'ino':
        info.ino = Number(val);
        break;
      default: {
        const list = info.extra.get(key) ?? [];
        list.push(val);
        info.extra.set(key, list);
      }
    }
  }
  return info;
}

/** A file lock as /proc/locks and the `lock:` lines of fdinfo show it. */
export interface LockLine {
  kind: 'POSIX' | 'FLOCK' | 'OFDLCK' | 'LEASE' | string;
  /** ADVISORY or MANDATORY for locks; ACTIVE, or BREAKING/BREAKER while a lease is being broken. */
  mode: string;
  /** READ or WRITE (a lease may say BREAKING, UNLCK ...). */
  type: string;
  pid: number;
  start: bigint;
  /** Last byte locked, or null for "to end of file". */
  end: bigint | null;
}

/** `1: POSIX  ADVISORY  WRITE 3302 00:2e:20 0 EOF` (also with the `->` of a blocked waiter). */
export function parseLockLine(line: string): LockLine | null {
  const m = /^\d+:\s+(\S+)\s+(?:(\S+)\s+)?(READ|WRITE|UNLCK|\S+)\s+(-?\d+)\s+\S+:\S+:\d+\s+(\d+)\s+(\d+|EOF)$/.exec(line.trim());
  if (!m) return null;
  return { kind: m[1]!, mode: m[2] ?? '', type: m[3]!, pid: Number(m[4]), start: BigInt(m[5]!), end: m[6] === 'EOF' ? null : BigInt(m[6]!) };
}
