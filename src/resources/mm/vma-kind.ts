// CRIU's VMA status bits (the `status` field of VmaEntry) and how a /proc/PID/maps line maps to
// them. A mapping cryo cannot checkpoint yet is reported here, before anything is touched.
import { statSync, statfsSync } from 'node:fs';
import type { MapsEntry } from '../../proc/index.js';
import { hex } from '../../util/errors.js';
import type { Blocker } from '../../util/blocker.js';

export const VMA = {
  AREA_REGULAR: 1 << 0,
  AREA_STACK: 1 << 1,
  AREA_VSYSCALL: 1 << 2,
  AREA_VDSO: 1 << 3,
  AREA_HEAP: 1 << 5,
  FILE_PRIVATE: 1 << 6,
  FILE_SHARED: 1 << 7,
  ANON_SHARED: 1 << 8,
  ANON_PRIVATE: 1 << 9,
  AREA_SYSVIPC: 1 << 10,
  AREA_SOCKET: 1 << 11,
  AREA_VVAR: 1 << 12,
  AREA_AIORING: 1 << 13,
  AREA_MEMFD: 1 << 14,
} as const;

export type VmaKind = 'anon-private' | 'anon-shared' | 'file-private' | 'file-shared' | 'sysv-shm' | 'vdso' | 'vvar' | 'vsyscall';

/** Classifies a mapping; returns a blocker message instead when cryo cannot handle it. */
export function classifyVma(pid: number, m: MapsEntry): { kind: VmaKind } | { blocker: Blocker } {
  const refuse = (reason: string) => ({ blocker: { pid, mapping: mappingName(m), kind: 'mapping', reason } });
  if (m.path === '[vdso]') return { kind: 'vdso' };
  if (m.path === '[vvar]' || m.path === '[vvar_vclock]') return { kind: 'vvar' };
  if (m.path === '[vsyscall]') return { kind: 'vsyscall' };
  // Pages of the hugetlb pool (MAP_HUGETLB, SHM_HUGETLB, an MFD_HUGETLB memfd, a hugetlbfs file):
  // made again of small pages they would lose what the program asked for, so not made at all.
  if (m.path === '/anon_hugepage' || onHugetlbfs(pid, m)) return refuse(`huge pages of the hugetlb pool (MAP_HUGETLB, SHM_HUGETLB, a hugetlbfs file) — not supported yet`);
  // The inode of a SysV mapping is the segment id, and 0 is a valid one.
  if (m.path.startsWith('/SYSV')) return { kind: 'sysv-shm' }; // whole-segment checks: sysv-shm.ts
  if (m.inode === 0) {
    if (m.shared) return refuse(`shared mapping of an unknown kind (${m.path || 'no name'}) — not supported`);
    return { kind: 'anon-private' };
  }
  if (m.path === '/dev/zero' || m.path.startsWith('/dev/zero ')) {
    if (m.shared) return { kind: 'anon-shared' };
    return { kind: 'anon-private' };
  }
  // io_setup's completion ring: a file of the kernel's aio filesystem, shown as "/[aio] (deleted)".
  // A copy would be plain memory, with no AIO context behind its address (io_getevents EINVAL).
  if (m.path === '/[aio]' && m.deleted) return refuse(`the ring of an AIO context (io_setup) — not supported yet`);
  if (m.path.startsWith('/secretmem')) return refuse(`memfd_secret memory — its pages cannot be read from outside the process, by design; not supported`);
  if (m.path.startsWith('[')) return refuse(`kernel mapping ${m.path} — not supported`);
  // /dev/shm and other tmpfs files under /dev are files like any other; devices are not.
  if (m.path.startsWith('/dev/') && !isRegularMapping(pid, m)) return refuse(`device mapping ${m.path} — not supported`);
  if (m.path.startsWith('anon_inode:')) return refuse(`${m.path} mapping — not supported`);
  return { kind: m.shared ? 'file-shared' : 'file-private' };
}

const HUGETLBFS_MAGIC = 0x958458f6;

/** Whether a file mapping is of hugetlbfs (a filesystem without a device: major 0). */
function onHugetlbfs(pid: number, m: MapsEntry): boolean {
  if (m.inode === 0 || !m.dev.startsWith('00:')) return false;
  try {
    return statfsSync(`/proc/${pid}/map_files/${m.start.toString(16)}-${m.end.toString(16)}`).type === HUGETLBFS_MAGIC;
  } catch {
    return false; // unmapped meanwhile
  }
}

/** A mapping as blockers name it: `0xSTART-0xEND`. */
export function mappingName(m: MapsEntry): string {
  return `${hex(m.start)}-${hex(m.end)}`;
}

/** madvise advice numbers that VmFlags show, as CRIU keeps them in VmaEntry.madv (1 << advice). */
export const MADV_BY_VMFLAG: Record<string, number> = {
  rr: 1, // MADV_RANDOM
  sr: 2, // MADV_SEQUENTIAL
  dc: 10, // MADV_DONTFORK
  mg: 12, // MADV_MERGEABLE
  hg: 14, // MADV_HUGEPAGE
  nh: 15, // MADV_NOHUGEPAGE
  dd: 16, // MADV_DONTDUMP
  wf: 18, // MADV_WIPEONFORK
};

function isRegularMapping(pid: number, m: MapsEntry): boolean {
  try {
    return statSync(`/proc/${pid}/map_files/${m.start.toString(16)}-${m.end.toString(16)}`).isFile();
  } catch {
    return false;
  }
}
