// Where and how eagerly a thread is scheduled, beyond nice and policy: its CPU affinity
// (sched_setaffinity) and I/O priority (ioprio_set). Both are per thread and both are read and
// set from outside, by TID, with no injected call. CRIU keeps neither: thread_core_entry 1002
// and 1003. Recorded only when they differ from what a new process gets (every CPU; no I/O
// priority), so a restore on a machine with other CPUs is only constrained when the program
// constrained itself.
import { readFileSync } from 'node:fs';
import { sys, sysTry } from '../../sys/index.js';
import { UserError } from '../../util/errors.js';

const IOPRIO_WHO_PROCESS = 1; // a TID names one thread here
const MASK_BYTES = 1024; // CPUs up to 8191

export interface Placement {
  /** The affinity bitmap as 64-bit words, or null when it is every CPU there is. */
  affinity: bigint[] | null;
  /** The I/O priority, 0 for none. */
  ioprio: number;
}

let possible: number[] | undefined;
/** CPUs the machine could ever run (the default affinity covers them all); read once per run. */
function possibleCpus(): number[] {
  possible ??= cpuList(readFileSync('/sys/devices/system/cpu/possible', 'utf8'));
  return possible;
}

/** CPU numbers from a list such as "0-3,8". */
export function cpuList(text: string): number[] {
  const out: number[] = [];
  for (const part of text.trim().split(',').filter(Boolean)) {
    const [a, b] = part.split('-').map(Number);
    for (let c = a!; c <= (b ?? a!); c++) out.push(c);
  }
  return out;
}

function words(cpus: number[]): bigint[] {
  const w: bigint[] = [];
  for (const c of cpus) {
    while (w.length <= c >> 6) w.push(0n);
    w[c >> 6]! |= 1n << BigInt(c & 63);
  }
  return w;
}

function cpusOf(w: bigint[]): number[] {
  const out: number[] = [];
  w.forEach((word, i) => {
    for (let b = 0; b < 64; b++) if ((word >> BigInt(b)) & 1n) out.push(i * 64 + b);
  });
  return out;
}

/** The thread's placement; null if it ended meanwhile. */
export function dumpPlacement(tid: number): Placement | null {
  const buf = Buffer.alloc(MASK_BYTES);
  const r = sysTry('sched_getaffinity', [tid, buf.length, buf]);
  const io = sysTry('ioprio_get', [IOPRIO_WHO_PROCESS, tid]);
  if (r.ret < 0 || io.ret < 0) return null;
  const cpus: number[] = [];
  for (let i = 0; i < r.ret; i++) for (let b = 0; b < 8; b++) if ((buf[i]! >> b) & 1) cpus.push(i * 8 + b);
  const mine = new Set(cpus);
  const everything = possibleCpus().every((c) => mine.has(c));
  return { affinity: everything ? null : words(cpus), ioprio: io.ret };
}

/** Sets the thread's affinity and I/O priority; an affinity naming no CPU of this machine fails. */
export function restorePlacement(tid: number, p: Placement): void {
  if (p.affinity) {
    const buf = Buffer.alloc(Math.max(8, p.affinity.length * 8));
    p.affinity.forEach((w, i) => buf.writeBigUInt64LE(BigInt.asUintN(64, w), i * 8));
    const r = sysTry('sched_setaffinity', [tid, buf.length, buf]);
    if (r.ret < 0) {
      throw new UserError(`thread ${tid}: cannot restore its CPU affinity (CPUs ${cpusOf(p.affinity).join(',')}): errno ${r.errno} — none of them can run here`);
    }
  }
  if (p.ioprio) sys('ioprio_set', [IOPRIO_WHO_PROCESS, tid, p.ioprio], `thread ${tid}: I/O priority`);
}

/** The thread's I/O priority (0: none), for the verification; -1 if it cannot be read. */
export function ioprioOf(tid: number): number {
  const r = sysTry('ioprio_get', [IOPRIO_WHO_PROCESS, tid]);
  return r.ret < 0 ? -1 : r.ret;
}

/** The affinity as the verification spells it, from the image and from /proc alike. */
export function affinityText(cpus: number[]): string {
  return [...cpus].sort((a, b) => a - b).join(',');
}

export { cpusOf as affinityCpus };
