// The three GDT TLS slots (set_thread_area) a task can use: glibc on x86_64 uses fs_base, but
// 32-bit code in a 64-bit process may use these, and CRIU's image carries them.
import { ptrace } from '../../sys/index.js';
import type { user_desc_t } from '../../image/gen/core-x86_pb.js';

const GET_THREAD_AREA = 25;
const SET_THREAD_AREA = 26;
export const GDT_TLS_ENTRIES = [12, 13, 14];

/** One slot, as the image's user_desc_t holds it. */
export type UserDesc = Omit<user_desc_t, '$typeName' | '$unknown'>;

export function dumpTls(tid: number): UserDesc[] {
  return GDT_TLS_ENTRIES.map((entry) => {
    const b = Buffer.alloc(16);
    ptrace(GET_THREAD_AREA, tid, entry, b, `tid ${tid} TLS entry ${entry}`);
    const f = b.readUInt32LE(12);
    return {
      entryNumber: b.readUInt32LE(0),
      baseAddr: b.readUInt32LE(4),
      limit: b.readUInt32LE(8),
      seg32bit: (f & 1) !== 0,
      contentsH: (f & 4) !== 0,
      contentsL: (f & 2) !== 0,
      readExecOnly: (f & 8) !== 0,
      limitInPages: (f & 16) !== 0,
      segNotPresent: (f & 32) !== 0,
      usable: (f & 64) !== 0,
    };
  });
}

/** Sets the slots that hold a segment; empty ones are already empty in a new task. */
export function restoreTls(tid: number, descs: UserDesc[]): void {
  for (const d of descs) {
    if (d.segNotPresent && d.readExecOnly && !d.baseAddr && !d.limit) continue;
    const b = Buffer.alloc(16);
    b.writeUInt32LE(d.entryNumber, 0);
    b.writeUInt32LE(d.baseAddr, 4);
    b.writeUInt32LE(d.limit, 8);
    const f =
      (d.seg32bit ? 1 : 0) | (d.contentsL ? 2 : 0) | (d.contentsH ? 4 : 0) | (d.readExecOnly ? 8 : 0) |
      (d.limitInPages ? 16 : 0) | (d.segNotPresent ? 32 : 0) | (d.usable ? 64 : 0);
    b.writeUInt32LE(f, 12);
    ptrace(SET_THREAD_AREA, tid, d.entryNumber, b, `tid ${tid} TLS entry ${d.entryNumber}`);
  }
}
