// Seccomp: strict mode, or a chain of BPF filters per thread. Read from outside
// (PTRACE_SECCOMP_GET_FILTER, newest first, with PTRACE_SECCOMP_GET_METADATA for the flags);
// each distinct chain is saved once in seccomp.img. Restored by each thread itself before its
// credentials change (installing needs CAP_SYS_ADMIN or no_new_privs), while the tracer holds
// PTRACE_O_SUSPEND_SECCOMP so that the rest of the restore is not filtered; the filters take
// effect when the tree is released.
import { readFileSync } from 'node:fs';
import { PTRACE, PTRACE_O, PR, ptrace, sysTry, E, SysError } from '../../sys/index.js';
import type { RestoreTask } from '../context.js';
import type { Tracee } from '../../ptrace/index.js';
import type { core_entry } from '../../image/gen/core_pb.js';
import { UserError } from '../../util/errors.js';

export const SECCOMP_MODE = { DISABLED: 0, STRICT: 1, FILTER: 2 } as const;
const SECCOMP_SET_MODE_FILTER = 1;
const BPF_INSN = 8;

/** One thread's seccomp state: its mode and filters, oldest first. */
export interface ThreadSeccomp {
  mode: number;
  filters: { insns: Buffer; flags: number }[];
}

export function seccompMode(tid: number): number {
  const m = /^Seccomp:\s+(\d+)/m.exec(readFileSync(`/proc/${tid}/status`, 'utf8'));
  return m ? Number(m[1]) : 0;
}

/** The thread's filters, read while we trace it (needs CAP_SYS_ADMIN: root). */
export function dumpSeccomp(tid: number): ThreadSeccomp {
  const mode = seccompMode(tid);
  const filters: ThreadSeccomp['filters'] = [];
  if (mode !== SECCOMP_MODE.FILTER) return { mode, filters };
  for (let i = 0; ; i++) {
    const n = sysTry('ptrace', [PTRACE.SECCOMP_GET_FILTER, tid, i, 0]);
    if (n.ret < 0 && n.errno === E.ENOENT) break;
    if (n.ret < 0) throw new SysError('ptrace (seccomp filter)', n.errno, `tid ${tid} filter ${i}`);
    const insns = Buffer.alloc(n.ret * BPF_INSN);
    ptrace(PTRACE.SECCOMP_GET_FILTER, tid, i, insns, `tid ${tid} seccomp filter ${i}`);
    const md = Buffer.alloc(16);
    md.writeBigUInt64LE(BigInt(i), 0);
    const flags = sysTry('ptrace', [PTRACE.SECCOMP_GET_METADATA, tid, 16, md]).ret >= 0 ? Number(md.readBigUInt64LE(8)) : 0;
    filters.unshift({ insns, flags });
  }
  return { mode, filters };
}

/** Installs the thread's seccomp state, from inside it (the tracer suspends it until release). */
export function restoreSeccomp(r: RestoreTask, s: ThreadSeccomp): void {
  if (s.mode === SECCOMP_MODE.DISABLED) return;
  // Added to the tracee's options (PTRACE_SETOPTIONS replaces them all): a later call that sets
  // them again from that record (TRACESYSGOOD for the last calls) must keep seccomp suspended.
  r.tracee.options |= PTRACE_O.SUSPEND_SECCOMP;
  ptrace(PTRACE.SETOPTIONS, r.pid, 0, r.tracee.options, `tid ${r.pid}: suspend seccomp while restoring`);
  if (s.mode === SECCOMP_MODE.STRICT) {
    r.remote.call('prctl', [PR.SET_SECCOMP, SECCOMP_MODE.STRICT, 0, 0, 0], 'seccomp strict mode');
    return;
  }
  for (const [i, f] of s.filters.entries()) {
    r.scratch.reset();
    const prog = Buffer.alloc(16);
    prog.writeUInt16LE(f.insns.length / BPF_INSN, 0);
    prog.writeBigUInt64LE(r.scratch.put(f.insns), 8);
    r.remote.call('seccomp', [SECCOMP_SET_MODE_FILTER, f.flags, r.scratch.put(prog)], `seccomp filter ${i + 1} of ${s.filters.length}`);
  }
}

/** A thread's chain from seccomp.img, oldest first: from its newest filter back through prev. */
export function seccompChain(filters: { filter: Uint8Array; prev: number; flags: number }[], mode: number, newest: number): ThreadSeccomp {
  const chain: ThreadSeccomp['filters'] = [];
  if (mode !== SECCOMP_MODE.FILTER) return { mode, filters: chain };
  const seen = new Set<number>();
  for (let i = newest; ; ) {
    const f = filters[i];
    if (!f || seen.has(i)) throw new UserError(`seccomp.img: filter ${i} is missing or its chain loops`);
    seen.add(i);
    chain.unshift({ insns: Buffer.from(f.filter), flags: f.flags });
    if (!f.prev) break;
    i = f.prev - 1;
  }
  return { mode, filters: chain };
}

/**
 * Every thread's seccomp state into its core (mode, newest filter) and the filter list of
 * seccomp.img, where each filter names the one installed before it (prev: index + 1); threads
 * with the same chain share its entries.
 */
export function saveSeccomp(frozen: Tracee[], cores: { tid: number; core: core_entry }[]): { filter: Buffer; prev?: number; flags?: number }[] {
  const list: { filter: Buffer; prev?: number; flags?: number }[] = [];
  const known = new Map<string, number>();
  for (const { tid, core } of cores) {
    if (!frozen.some((f) => f.tid === tid) || !core.threadCore) continue;
    const s = dumpSeccomp(tid);
    if (s.mode === SECCOMP_MODE.DISABLED) continue;
    core.threadCore.seccompMode = s.mode;
    let at = 0; // index + 1 of the newest filter so far
    for (const f of s.filters) {
      const key = `${at}:${f.flags}:${f.insns.toString('hex')}`;
      let idx = known.get(key);
      if (idx === undefined) {
        list.push({ filter: f.insns, ...(at ? { prev: at } : {}), ...(f.flags ? { flags: f.flags } : {}) });
        idx = list.length - 1;
        known.set(key, idx);
      }
      at = idx + 1;
    }
    if (at) core.threadCore.seccompFilter = at - 1;
  }
  return list;
}
