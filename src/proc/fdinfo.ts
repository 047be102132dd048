// /proc/PID/fdinfo/N: position, open flags, mount id and the kind-specific lines after them.

export interface FdInfo {
  pos: bigint;
  flags: number;
  mntId: number;
  ino: number;
  /** Every other line, key -> rest of line (eventfd-count, tfd, inotify ...). */
  extra: Map<string, string[]>;
}

export function parseFdinfo(text: string): FdInfo {
  const info: FdInfo = { pos: 0n, flags: 0, mntId: 0, ino: 0, extra: new Map() };
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
