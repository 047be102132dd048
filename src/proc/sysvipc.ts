// /proc/sysvipc/shm: every SysV shared memory segment of the IPC namespace.

export interface ShmSegment {
  key: number;
  shmid: number;
  /** Mode bits, with SHM_DEST (01000: removed, goes when the last attachment does). */
  perms: number;
  size: bigint;
  nattch: number;
  uid: number;
  gid: number;
  cuid: number;
  cgid: number;
}

export const SHM_DEST = 0o1000;

export function parseSysvShm(text: string): ShmSegment[] {
  const out: ShmSegment[] = [];
  for (const line of text.split('\n').slice(1)) {
    const f = line.trim().split(/\s+/);
    if (f.length < 11) continue;
    // key shmid perms size cpid lpid nattch uid gid cuid cgid ...
    out.push({
      key: Number(f[0]) >>> 0, shmid: Number(f[1]), perms: parseInt(f[2]!, 8), size: BigInt(f[3]!), nattch: Number(f[6]),
      uid: Number(f[7]), gid: Number(f[8]), cuid: Number(f[9]), cgid: Number(f[10]),
    });
  }
  return out;
}
