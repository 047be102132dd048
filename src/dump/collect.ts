// Before anything is touched: which tasks make up the tree, and whether cryo can checkpoint
// every one of them. Every blocker is named, with the PID and the object.
import { nsPidOf, dumperLevels } from '../resources/ns/pid.js';
import type { Blocker } from '../util/blocker.js';
import { readFileSync, readdirSync, existsSync } from 'node:fs';
import { parseStat, parseStatus, parseMaps, statusNumber, type MapsEntry } from '../proc/index.js';
import { kcmp, KCMP, NR } from '../sys/index.js';
import { mappingBlockers } from '../resources/mm/dump.js';
import { isSysvShm, sysvShmBlockers } from '../resources/mm/sysv-shm.js';
import { fdBlockers } from '../resources/files/fds.js';
import { cttyBlocker } from '../resources/files/tty.js';
import { UserError } from '../util/errors.js';
import { namespaceBlockers, nsLink } from './namespaces.js';
import { nestedZombieProblem } from '../resources/ns/pid-nested.js';
import { scanFiles, type FileScan, type ScanOptions } from '../resources/files/scan.js';
import { mountBlockers } from '../resources/mnt/index.js';
import { threadCgroupBlocker } from '../resources/task/cgroup.js';
import { threadSharingBlockers } from '../resources/task/thread-sharing.js';
import { childrenOf } from '../resources/task/children.js';
import { frozenCgroupBlocker, freezeTargetOf, outsideBlocker, type FreezeTarget } from '../resources/cgroup/freeze.js';

export interface CollectOptions extends ScanOptions {
  /** --freeze-cgroup: the cgroup directory to freeze, or '' for the root's own v2 cgroup. */
  freezeCgroup?: string;
}

/** Task flag of kernel threads (linux/sched.h), in field 9 of /proc/PID/stat. */
const PF_KTHREAD = 0x00200000;

export interface TaskPlan {
  pid: number;
  /** Parent within the tree; 0 for the root. */
  ppid: number;
  threads: number[];
  pgid: number;
  sid: number;
  /** A zombie: only its exit status is saved. */
  zombie: boolean;
  /**
   * Its main thread exited (pthread_exit) while other threads run on: the leader shows as a
   * zombie, but the process lives. Refused (treeBlockers), never taken for a zombie.
   */
  leaderExited?: boolean;
  /** Stopped by a signal (state T): restored stopped. */
  stopped: boolean;
  /** Wait status of a zombie (as waitpid reports it). */
  exitStatus: number;
}

/** The task's threads; none when it has ended meanwhile. */
export function threadsOf(pid: number): number[] {
  try {
    return readdirSync(`/proc/${pid}/task`).map(Number).sort((a, b) => a - b);
  } catch {
    return [];
  }
}


export function planTask(pid: number, ppid: number): TaskPlan {
  const stat = parseStat(readFileSync(`/proc/${pid}/stat`, 'utf8'));
  const threads = threadsOf(pid);
  const leaderExited = stat.state === 'Z' && threads.some((t) => t !== pid);
  const zombie = stat.state === 'Z' && !leaderExited;
  return {
    pid,
    ppid,
    threads: zombie ? [pid] : threads,
    ...(leaderExited ? { leaderExited } : {}),
    pgid: stat.pgid,
    sid: stat.sid,
    zombie,
    stopped: stat.state === 'T',
    exitStatus: stat.exitCode,
  };
}

/** " (comm)" of a task, or nothing if it is gone. */
function commSuffix(pid: number): string {
  try {
    return ` (${parseStat(readFileSync(`/proc/${pid}/stat`, 'utf8')).comm})`;
  } catch {
    return '';
  }
}

/** The blockers of one live task. `frozenByUs`: we trace it, which is not a blocker. */
export function taskBlockers(pid: number, frozenByUs: boolean, scan: FileScan, maps: MapsEntry[], root = pid): Blocker[] {
  const blockers: Blocker[] = [];
  const status = parseStatus(readFileSync(`/proc/${pid}/status`, 'utf8'));
  const stat = parseStat(readFileSync(`/proc/${pid}/stat`, 'utf8'));
  if (stat.state === 't' && !frozenByUs) blockers.push({ pid, kind: 'task', reason: 'stopped by a debugger — not supported' });
  const tracer = statusNumber(status, 'TracerPid');
  if (tracer !== 0 && !(frozenByUs && tracer === process.pid)) blockers.push({ pid, kind: 'task', reason: `already traced by pid ${tracer}${commSuffix(tracer)} (a debugger or strace: a task has one tracer) — not supported`, hint: 'detach the tracer first' });
  blockers.push(...namespaceBlockers(pid, root));
  blockers.push(...mappingBlockers(pid, maps, scan.ghostLimit));
  blockers.push(...fdBlockers(pid, scan));
  const ctty = cttyBlocker(pid, scan.terminals);
  if (ctty) blockers.push(ctty);
  const frozen = frozenCgroupBlocker(pid);
  if (frozen) blockers.push(frozen);
  const split = threadCgroupBlocker(pid);
  if (split) blockers.push(split);
  blockers.push(...threadSharingBlockers(pid));
  return blockers;
}


/** Lists the tree under `pid` (parents before children) and every reason it cannot be dumped. */
export function collectTree(pid: number, opts: CollectOptions = {}): { tasks: TaskPlan[]; blockers: Blocker[]; scan: FileScan; cgroup: FreezeTarget | null } {
  if (!Number.isInteger(pid) || pid <= 0) throw new UserError(`invalid PID ${pid}`);
  if (!existsSync(`/proc/${pid}`)) throw new UserError(`no process with PID ${pid}`);
  if (pid === process.pid) throw new UserError(`PID ${pid} is cryo itself`);
  const stat = parseStat(readFileSync(`/proc/${pid}/stat`, 'utf8'));
  if (stat.flags & PF_KTHREAD) throw new UserError(`pid ${pid} (${stat.comm}) is a kernel thread — only user processes can be checkpointed`);
  const root = planTask(pid, 0);
  if (root.zombie) throw new UserError(`pid ${pid} is a zombie — nothing to checkpoint`);
  const tasks = [root];
  for (let i = 0; i < tasks.length; i++) {
    const t = tasks[i]!;
    if (t.zombie) continue;
    for (const kid of childrenOf(t.pid)) {
      if (kid === process.pid) throw new UserError(`pid ${pid}: cryo itself is in this tree`);
      try {
        tasks.push(planTask(kid, t.pid));
      } catch (e) {
        if (!endedMeanwhile(kid, kid)) throw e; // a child that exited and was reaped since it was listed
      }
    }
  }
  const scan = scanFiles(tasks.map((t) => t.pid), opts);
  const blockers = treeBlockers(tasks, false, scan);
  let cgroup: FreezeTarget | null = null;
  if (opts.freezeCgroup !== undefined) {
    const judged = freezeTargetOf(pid, opts.freezeCgroup);
    blockers.push(...judged.blockers);
    cgroup = judged.target;
    for (const t of cgroup ? tasks.filter((k) => !k.zombie) : []) {
      const b = outsideBlocker(cgroup!, t.pid);
      if (b && !endedMeanwhile(t.pid, t.pid)) blockers.push(b);
    }
  }
  return { tasks, blockers, scan, cgroup };
}

/** Every blocker of the live tasks of a tree, and of what parents and children share. */
export function treeBlockers(tasks: TaskPlan[], frozenByUs: boolean, scan: FileScan): Blocker[] {
  const blockers: Blocker[] = [];
  // Before the freeze a task may end while we look at it: it is then not part of the tree.
  for (const t of tasks.filter((k) => k.leaderExited)) {
    blockers.push({ pid: t.pid, kind: 'task', reason: `its main thread has exited (pthread_exit) and ${t.threads.length - 1} other thread(s) run on — not supported yet` });
  }
  const live = tasks.filter((t) => !t.zombie && !t.leaderExited).flatMap((t) => {
    try {
      return [{ t, maps: parseMaps(readFileSync(`/proc/${t.pid}/maps`, 'utf8')) }];
    } catch (e) {
      if (!frozenByUs && endedMeanwhile(t.pid, t.pid)) return [];
      throw e;
    }
  });
  // Segments of cryo's IPC namespace are judged here; a tree's own IPC namespace is saved whole
  // (resources/ns), where only an attachment that does not start at the segment is refused.
  const hostIpc = nsLink('self', 'ipc');
  const attached = live.flatMap(({ t, maps }) => maps.filter(isSysvShm).map((m) => ({ pid: t.pid, m, host: nsLink(t.pid, 'ipc') === hostIpc })));
  blockers.push(...sysvShmBlockers(attached.filter((a) => a.host)));
  for (const { pid, m } of attached.filter((a) => !a.host && a.m.offset !== 0n)) {
    blockers.push({ pid, mapping: `${m.start.toString(16)}-${m.end.toString(16)}`, kind: 'sysv-shm', reason: `part of SysV shared memory segment ${m.inode} (split by mprotect or munmap) — not supported yet` });
  }
  for (const z of tasks.filter((t) => t.zombie)) {
    // A zombie is made again by a fork from its parent, then setsid/setpgid: it can lead its own
    // session or group, or join a group that exists then, nothing else.
    const parent = tasks.find((p) => p.pid === z.ppid);
    if (!parent) continue;
    const nested = nestedZombieProblem(z.pid, parent.pid);
    if (nested) blockers.push({ pid: z.pid, kind: 'namespace', reason: nested });
    if (z.sid !== parent.sid && z.sid !== z.pid) blockers.push({ pid: z.pid, kind: 'session', reason: `zombie in session ${z.sid}, which is neither its parent's nor its own — not supported yet` });
    else if (z.pgid !== parent.pgid && z.pgid !== z.pid && !tasks.some((k) => k.pid === z.pgid && !k.zombie)) {
      blockers.push({ pid: z.pid, kind: 'session', reason: `zombie in process group ${z.pgid}, whose leader is not in the tree — not supported yet` });
    }
  }
  // A container's mount namespace: every mount judged, and what would be opened by a host path.
  if (live.length) blockers.push(...mountBlockers(tasks[0]!.pid, live.map(({ t }) => t.pid), scan.externalMounts, scan.unix));
  for (const { t, maps } of live) {
    try {
      blockers.push(...taskBlockers(t.pid, frozenByUs, scan, maps, tasks[0]!.pid), ...sharingBlockers(t, tasks));
    } catch (e) {
      if (!frozenByUs && endedMeanwhile(t.pid, t.pid)) continue;
      throw e;
    }
  }
  return blockers;
}

/** What a task shares with its parent that the restore cannot make again. */
function sharingBlockers(t: TaskPlan, tasks: TaskPlan[]): Blocker[] {
  const blockers: Blocker[] = [];
  if (!t.ppid) return blockers;
  // Memory, fd table, fs context and signal handlers shared with the parent are restored
  // shared (CLONE_VM, CLONE_FILES, CLONE_FS, CLONE_SIGHAND); a vfork still waiting is not.
  const sharesVm = kcmp(t.ppid, t.pid, KCMP.VM) === 0;
  if (sharesVm && inVfork(t.ppid)) blockers.push({ pid: t.pid, kind: 'task', reason: `vfork child whose parent ${t.ppid} still waits for it to exec or exit — not supported` });
  const sharing = sharesVm || kcmp(t.ppid, t.pid, KCMP.FILES) === 0 || kcmp(t.ppid, t.pid, KCMP.FS) === 0;
  const parent = tasks.find((p) => p.pid === t.ppid);
  // A task inherits its parent's session at fork; one in another session of the tree whose
  // leader is alive (so no helper can stand in for it) cannot be put back there.
  if (parent && t.sid !== parent.sid && t.sid !== t.pid && tasks.some((k) => k.pid === t.sid && !k.zombie)) {
    blockers.push({ pid: t.pid, kind: 'session', reason: `in session ${t.sid}, whose leader is in the tree but is not the session of its parent ${t.ppid} — not supported yet` });
  }
  // ...but not when the child must be forked through helpers (its session or group leader is gone).
  if (sharing && parent && ((t.sid !== parent.sid && t.sid !== t.pid) || (t.pgid !== parent.pgid && t.pgid !== t.pid && !tasks.some((k) => k.pid === t.pgid)))) {
    blockers.push({ pid: t.pid, kind: 'session', reason: `shares memory, fd table or cwd with its parent ${t.ppid} but is in a session or group whose leader is gone — not supported yet` });
  }
  // Inside the tree's own PID namespace no helper can stand in for a gone leader: its PID there
  // is not known (the restore forks helpers with the leader's PID in the task's namespace).
  const goneLeader = (p: number) => !tasks.some((k) => k.pid === p);
  if (parent && nsPidOf(t.pid).length > dumperLevels()
    && ((t.sid !== parent.sid && t.sid !== t.pid && goneLeader(t.sid)) || (t.pgid !== parent.pgid && t.pgid !== t.pid && goneLeader(t.pgid)))) {
    blockers.push({ pid: t.pid, kind: 'session', reason: `in a session or process group whose leader is gone, inside a PID namespace of its own — not supported yet` });
  }
  return blockers;
}

/** The task is in vfork(), or in clone()/clone3() (which may be a vfork too): blocked for its child. */
function inVfork(pid: number): boolean {
  try {
    const nr = Number(readFileSync(`/proc/${pid}/syscall`, 'utf8').split(' ')[0]);
    return nr === NR.vfork || nr === NR.clone || nr === NR.clone3;
  } catch {
    return false;
  }
}

/** A task or thread that exited (or became a zombie) between being listed and being seized. */
export function endedMeanwhile(pid: number, tid: number): boolean {
  try {
    return /^\d+ \(.*\) [ZX]/s.test(readFileSync(`/proc/${pid}/task/${tid}/stat`, 'utf8'));
  } catch {
    return true;
  }
}

/** The plan of a task, or null when it is gone already (a child that exited and was reaped). */
export function tryPlan(pid: number, ppid: number): TaskPlan | null {
  try {
    return planTask(pid, ppid);
  } catch {
    return null;
  }
}
