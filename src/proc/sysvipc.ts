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

/** The ipc_perm part every SysV object shows in /proc/sysvipc/*. */
export interface SysvPerm {
  key: number;
  id: number;
  /** Mode bits (octal in the file). */
  perms: number;
  uid: number;
  gid: number;
  cuid: number;
  cgid: number;
}

/** /proc/sysvipc/sem: key semid perms nsems uid gid cuid cgid otime ctime. */
export function parseSysvSem(text: string): (SysvPerm & { nsems: number })[] {
  return rows(text, 10).map((f) => ({
    key: Number(f[0]) >>> 0, id: Number(f[1]), perms: parseInt(f[2]!, 8), nsems: Number(f[3]),
    uid: Number(f[4]), gid: Number(f[5]), cuid: Number(f[6]), cgid: Number(f[7]),
  }));
}

/** /proc/sysvipc/msg: key msqid perms cbytes qnum lspid lrpid uid gid cuid cgid stime rtime ctime. */
export function parseSysvMsg(text: string): (SysvPerm & { cbytes: number; qnum: number })[] {
  return rows(text, 14).map((f) => ({
    key: Number(f[0]) >>> 0, id: Number(f[1]), perms: parseInt(f[2]!, 8), cbytes: Number(f[3]), qnum: Number(f[4]),
    uid: Number(f[7]), gid: Number(f[8]), cuid: Number(f[9]), cgid: Number(f[10]),
  }));
}

function rows(text: string, min: number): string[][] {
  return text.split('\n').slice(1).map((l) => l.trim().split(/\s+/)).filter((f) => f.length >= min);
}
