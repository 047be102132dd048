// PID namespaces: a container's init (PID 1 inside, a host PID outside) and its descendants
// have a PID at every level. cryo keeps the dumper's level in pstree_entry.pid/threads and the
// levels below it in cryo_ns_pid/cryo_ns_threads (from NSpid in /proc/PID/status); the restore
// hands clone3 all of them in set_tid, innermost first, and CLONE_NEWPID makes the init's level.
import { readFileSync } from 'node:fs';
import { parseStatus } from '../../proc/index.js';
import { UserError } from '../../util/errors.js';

/** NSpid of a task or thread: its PID in each namespace from the outermost to its own. */
export function nsPidOf(pid: number, tid = pid): number[] {
  const s = parseStatus(readFileSync(`/proc/${pid}/task/${tid}/status`, 'utf8'));
  return (s.get('NSpid') ?? String(tid)).split(/\s+/).map(Number);
}

let ownDepth: number | undefined;
/** How many PID namespaces cryo itself is below the outermost one, plus one. */
export function dumperLevels(): number {
  ownDepth ??= nsPidOf(process.pid).length;
  return ownDepth;
}

/** The task's (and each thread's) PIDs below cryo's level; empty in cryo's own namespace. */
export function nsPidsBelow(pid: number, threads: number[]): { nsPid: number[]; nsThreads: number[] } {
  const below = (tid: number) => nsPidOf(pid, tid).slice(dumperLevels());
  return { nsPid: below(pid), nsThreads: threads.flatMap((t) => (t === pid ? below(pid) : below(t))) };
}

/** clone3's set_tid: innermost namespace first, cryo's level (`hostPid`) last. */
export function setTidArray(hostPid: number, nsPid: readonly number[]): number[] {
  return [...nsPid].reverse().concat(hostPid);
}

/** A thread's levels from cryo_ns_threads (`index`: its place in pstree threads). */
export function threadNsPid(nsThreads: readonly number[], levels: number, index: number): number[] {
  return nsThreads.slice(index * levels, (index + 1) * levels);
}

/** A task's PID as another task sees it: `levels` is the caller's count of levels below cryo's. */
export type LocalPid = (hostPid: number, levels?: number) => number;

const localMaps = new WeakMap<object, LocalPid>();
/** localPidMap of a checkpoint's tasks and zombies, made once per checkpoint. */
export function localPids(ckpt: { tasks: { pstree: Parameters<typeof localPidMap>[0][number] }[]; zombies: { pid: number; nsPid: number[] }[] }): LocalPid {
  let m = localMaps.get(ckpt);
  if (!m) {
    m = localPidMap([...ckpt.tasks.map((t) => t.pstree), ...ckpt.zombies.map((z) => ({ pid: z.pid, threads: [], cryoNsPid: z.nsPid, cryoNsThreads: [] }))]);
    localMaps.set(ckpt, m);
  }
  return m;
}

/**
 * The PID a task of the tree sees for another one — what an injected setpgid or kill must name —
 * from host PIDs: its PID at the caller's level (`levels`, the caller's cryo_ns_pid length;
 * without it the named task's own, innermost level: a thread of the caller's own process). A
 * task the caller's PID namespace does not see (nested deeper is fine, shallower is not) is
 * refused. Unchanged for a tree in cryo's namespace.
 */
export function localPidMap(entries: { pid: number; threads: number[]; cryoNsPid: number[]; cryoNsThreads: number[] }[]): LocalPid {
  const m = new Map<number, readonly number[]>();
  for (const e of entries) {
    const levels = e.cryoNsPid.length;
    if (!levels) continue;
    m.set(e.pid, e.cryoNsPid);
    e.threads.forEach((t, i) => {
      const l = threadNsPid(e.cryoNsThreads, levels, i);
      if (l.length === levels) m.set(t, l);
    });
  }
  return (p, levels) => {
    const l = m.get(p);
    if (!l || levels === 0) return p;
    const at = levels ?? l.length;
    if (at > l.length) throw new UserError(`pid ${p} is not seen from a PID namespace ${at} levels below cryo's (it has ${l.length}) — cannot name it there`);
    return l[at - 1]!;
  };
}
