// `cryo restore`: read and check the images, wait for the PIDs to be free, create the root task
// with clone3(set_tid) from a stub, rebuild it and (top-down, each forked by its restored parent)
// its tree, and let them all go. On any failure every process created for the restore is killed
// and reaped: nothing half-restored is left behind.
import { sleepMs } from '../util/sleep.js';
import { checkRestorable } from './criu-compat.js';
import { pidExists, wait4, PTRACE, ptraceTry, SIG, PR, WAIT, PAGE_SIZE, sys, kill } from '../sys/index.js';
import { readCheckpoint, type CheckpointImage } from './images.js';
import { checkRestorePrivileges } from './privileges.js';
import { waitPidFree, waitPidGone } from './pid-holder.js';
import { checkImageDirTrust } from '../image/trust.js';
import { startStub, forkWithPid, killStub, type Stub } from './stub.js';
import { restoreTask } from './task.js';
import { afterTasksKinds, closeSessionFiles, restoreOwners, planKinds, beforeResumeKinds, prepareKinds, unmakeKinds, type RestoreSession } from './files.js';
import { TcpRestore } from '../resources/net/tcp-restore.js';
import type { NetworkLockMode } from '../resources/net/netlock.js';
import { createSegment, removeSegment, wasRemoved } from '../resources/mm/sysv-shm.js';
import { shmemSizes } from '../resources/mm/restore.js';
import { UserError } from '../util/errors.js';
import { writeOutputFile } from '../util/outfile.js';
import { failpoint } from '../util/failpoint.js';
import type { Log } from '../util/log.js';
import type { ProgressSink } from '../util/progress.js';
import { ProgressMeter } from '../util/progress-meter.js';
import { verifyRestored, type VerifyMode } from './verify.js';
import { rootCloneFlags, restoreRootNamespaces, removeRemovedSegments, stubNamespaces } from '../resources/ns/restore.js';
import { joinMadeNamespaces, closeMadeUserns, type MadeUserns } from '../resources/ns/user-restore.js';
import { makeTreeUserns, madeNetnsPath } from './user-namespace.js';
import { setTidArray } from '../resources/ns/pid.js';
import { restoreLastPids } from '../resources/ns/last-pid.js';
import { NetnsRestore } from '../resources/netns/index.js';
import { buildMounts, checkMountTargets } from '../resources/mnt/restore.js';
import { setTreeRoot } from '../resources/mnt/root-path.js';
import { CgroupRestore, type CgroupMode } from '../resources/cgroup/manage.js';
import { rebaseCgroups, type CgroupRootSpec } from '../resources/cgroup/root.js';

export interface RestoreOptions {
  dir: string;
  /** Leave the restored tree running and return (-d); otherwise wait for it to exit. */
  detach: boolean;
  pidfile?: string;
  log: Log;
  /** --inherit-fd: our fds standing in for files of the image, by key (`pipe:[INO]`). */
  inherit?: Map<string, number>;
  /** The root may be in a session led from outside the images; it joins ours (--shell-job). */
  shellJob?: boolean;
  /** Restore images whatever their owner and mode (--trust-image). */
  trustImage?: boolean;
  /** How long to wait for a PID still held by the dumped process (ms). */
  pidWaitMs?: number;
  /** Compare the restored tasks with the images before they run (default 'on': fail). */
  verify?: VerifyMode;
  /** Where --verify=warn prints each difference. */
  onDifference?: (line: string) => void;
  /** Told as memory is read into the tasks and tasks are done (at most every 16 MiB, every task). */
  onProgress?: ProgressSink;
  /** What of cpuinfo.img this CPU must have (--cpu-cap, resources/task/cpu.ts; default fpu,ins). */
  cpuCap?: string;
  /** Restore TCP connections (--tcp-established); images holding any are refused without. */
  tcpEstablished?: boolean;
  /** Restore them closed (--tcp-close; over --tcp-established): needed for images dumped with it. */
  tcpClose?: boolean;
  /** The lock made when the dump's is gone (default nftables). */
  networkLock?: NetworkLockMode;
  /** --external: veth[INSIDE]:OUTSIDE names the host end of a veth of the tree's namespace. */
  external?: string[];
  /** --root: where the container's root directory is now (default: where it was). */
  root?: string;
  /** --ext-mount-map KEY:PATH (and --external mnt[KEY]:PATH, in `external`): host paths of the external mounts. */
  extMounts?: Map<string, string>;
  /** --manage-cgroups: which cgroups get the images' settings (default soft: those it makes). */
  manageCgroups?: CgroupMode;
  /** --cgroup-root: where the root task's cgroups go instead (resources/cgroup/root.ts). */
  cgroupRoot?: CgroupRootSpec[];
}

export interface RestoreResult {
  pid: number;
  ms: number;
  /** Exit status of the restored root when not detached. */
  exitCode?: number;
}

export function restore(opts: RestoreOptions): RestoreResult {
  const { log } = opts;
  const t0 = performance.now();
  const ckpt = log.step('plan', () => planRestore(opts));
  const img = ckpt.tasks[0]!;
  // The root is our child (CLONE_PARENT) and we are a subreaper while we work, so that after a
  // failure every task comes back to us and is reaped at once. One exception: detached with a
  // parent-death signal, which our exit would fire; then the root is the stub's child, orphaned
  // (to init) when the stub goes, before that signal is set. It is per thread: any of the
  // root's threads may have one (a thread's fires when the process's parent exits too).
  const pdeath = [img.core, ...img.threads.map((th) => th.core)].some((c) => (c.threadCore?.pdeathSig ?? 0) !== 0);
  const ourChild = !opts.detach || !pdeath;
  const wasSubreaper = isSubreaper();
  if (ourChild) sys('prctl', [PR.SET_CHILD_SUBREAPER, 1, 0, 0, 0]);
  const session = newSession(ckpt, opts);
  session.progress.plan(memoryBytes(ckpt), ckpt.tasks.length);
  const made: Made = { segments: [], stub: null, tcp: null, netns: null, cgroups: null, userns: null };
  /** The tasks run: what the kinds made for them stays. */
  let restored = false;
  try {
    prepareOutside(session, made, opts);
    log.step('create tasks', () => createTree(session, made, opts, ourChild));
    log.step('whole tree', () => afterTasksKinds(session));
    log.step('verify', () => verifyRestored(ckpt, opts.verify ?? 'on', log, opts.onDifference));
    log.step('resume', () => {
      failpoint('restore:resume');
      if (opts.pidfile) writeOutputFile(opts.pidfile, `${img.pid}\n`, 0o644, 'pidfile');
      // Deleted files are deleted again before any task runs (or sees them in their directory).
      unmakeKinds(session, false);
      beforeResumeKinds(session);
      // Repair mode is left as late as can be: the connections run from the tasks' first step.
      made.tcp?.leaveRepair();
      resume(session);
    });
    restored = true;
  } catch (e) {
    made.tcp?.abort();
    made.netns?.abort();
    if (made.stub) killStub(made.stub);
    removeTree(session, ckpt.zombies.map((z) => z.pid), ourChild, log);
    for (const id of made.segments) removeSegment(id);
    made.cgroups?.undo();
    throw e;
  } finally {
    closeSessionFiles(session);
    made.netns?.close();
    if (made.userns) closeMadeUserns(made.userns);
    // After the close: a failed restore's sockets are gone (silently) before packets pass again.
    releaseLock(made.tcp, log);
    unmakeKinds(session, !restored);
    if (ourChild && !wasSubreaper) sys('prctl', [PR.SET_CHILD_SUBREAPER, 0, 0, 0, 0]);
    setTreeRoot(null);
  }
  const ms = performance.now() - t0;
  const n = ckpt.tasks.length + ckpt.zombies.length;
  log.info(`restored pid ${img.pid}${n > 1 ? ` and ${n - 1} more tasks` : ''} in ${ms.toFixed(1)} ms (${session.cowKept} pages still shared)`);
  if (opts.detach) return { pid: img.pid, ms };
  const st = reap(img.pid);
  return { pid: img.pid, ms, exitCode: st };
}

/** The images read and checked, and every PID they need free (or the restore fails now). */
function planRestore(opts: RestoreOptions): CheckpointImage {
  checkRestorePrivileges();
  if (!opts.trustImage) checkImageDirTrust(opts.dir);
  failpoint('restore:read');
  const c = readCheckpoint(opts.dir, { shellJob: opts.shellJob ?? false, tcpClose: opts.tcpClose ?? false });
  checkRestorable(c, opts.log, opts.cpuCap);
  planKinds(c, opts.inherit ?? new Map());
  if (c.namespaces.net) for (const p of NetnsRestore.problems(c.namespaces.net)) throw new UserError(p);
  if (c.namespaces.mounts) checkMountTargets(c.namespaces.mounts, mountTargets(opts));
  if (c.tcpConnections.size && !opts.tcpEstablished) {
    throw new UserError(`the images hold ${c.tcpConnections.size} TCP connection(s): restore them with --tcp-established (or closed, with --tcp-close)`);
  }
  if (c.tcpClosed) opts.log.info(`${c.tcpClosed} TCP connection(s) restored closed (--tcp-close)`);
  const waitMs = opts.pidWaitMs ?? Number(process.env.CRYO_PID_WAIT_MS ?? 5000);
  for (const t of c.tasks) for (const tid of [t.pid, ...t.threads.map((th) => th.tid)]) waitPidFree(tid, waitMs);
  for (const z of c.zombies) waitPidFree(z.pid, waitMs);
  return c;
}

/** What the tasks need around them before the first exists: cgroups, the network lock, the tree's user and network namespaces. */
function prepareOutside(session: RestoreSession, made: Made, opts: RestoreOptions): void {
  const { ckpt, log } = session;
  const img = ckpt.tasks[0]!;
  // The tree's cgroups exist, with their settings, before any task is put in them.
  made.cgroups = log.step('cgroups', () => {
    const mode = opts.manageCgroups ?? 'soft';
    if (mode === 'ignore') ckpt.cgroups.clear(); // every task stays in ours
    else if (opts.cgroupRoot?.length) for (const line of rebaseCgroups(ckpt.cgroups, ckpt.cgroupDirs, ckpt.cgroups.get(img.core.tc?.cgSet ?? 0) ?? [], opts.cgroupRoot)) log.info(line);
    return CgroupRestore.prepare([...ckpt.cgroups.values()], ckpt.cgroupDirs, mode, log);
  });
  failpoint('restore:cgroups');
  // (CRIU names its run in dump_criu_run_id whatever it dumped: only cryo's kept locks count.)
  if (ckpt.tcpConnections.size || /^cryoh-/i.test(ckpt.inventory.dumpCriuRunId ?? '')) {
    const tcp = log.step('lock network', () => TcpRestore.start(ckpt.tcpConnections, ckpt.inventory, opts.networkLock ?? 'nftables'));
    made.tcp = session.tcp = tcp;
    if (tcp.lockName) log.info(`network lock ${tcp.lockName}${tcp.adopted ? ' (the dump\'s)' : ''} for ${ckpt.tcpConnections.size} TCP connection(s)`);
  }
  // The tree's own user namespace and those it owns, made by a task inside it (user-restore.ts).
  made.userns = makeTreeUserns(session);
  failpoint('restore:userns'); // every restore passes it, as restore:netns
  // The tree's own network namespace, whole, before its sockets and tasks are made in it.
  const want = ckpt.namespaces.net;
  if (want) {
    const inside = madeNetnsPath(made.userns);
    const netns = made.netns = log.step('network namespace', () => NetnsRestore.create(want, outsideNames(opts.external ?? []), inside));
    netns.verify(want, opts.verify ?? 'on', (line) => { log.warn(`verify: ${line}`); opts.onDifference?.(line); });
  }
  failpoint('restore:netns');
}

/** The root cloned from a stub with its PID and namespaces, then every task, top-down. */
function createTree(session: RestoreSession, made: Made, opts: RestoreOptions, ourChild: boolean): void {
  const { ckpt, log } = session;
  const img = ckpt.tasks[0]!;
  const { netns, userns } = made;
  failpoint('restore:stub');
  const vmas = ckpt.tasks.flatMap((t) => t.memory.vmas);
  // Started inside the tree's network namespace, the stub gives it to the root it clones.
  const stub = made.stub = netns ? netns.run(() => startStub(vmas, img.pid)) : startStub(vmas, img.pid);
  const ns = ckpt.namespaces;
  if (userns) joinMadeNamespaces(stub.remote, userns);
  // The stub makes the time namespace and stands in the cgroup namespace's roots: the root it clones gets both.
  for (const line of stubNamespaces(stub.remote, stub.tracee.tid, ns, ckpt.cgroups.get(img.core.tc?.cgSet ?? 0))) log.info(line);
  failpoint('restore:fork');
  if (ns.own.has('pid')) session.restorerPidfd = 1 + Math.max(2, ...ckpt.tasks.flatMap((t) => t.fdinfo.map((f) => f.fd)));
  const root = forkWithPid(stub, img.pid, ourChild, {
    flags: rootCloneFlags(ns), setTid: setTidArray(img.pid, img.pstree.cryoNsPid), ...(session.restorerPidfd !== undefined ? { pidfdAt: session.restorerPidfd } : {}),
  });
  session.tracees.push(root);
  // The root's new UTS and IPC namespaces get their contents before it uses them.
  failpoint('restore:namespaces');
  for (const [old, id] of restoreRootNamespaces(root.tid, ns)) session.sysvIds.set(old, id);
  // Every restore passes the step, with a mount namespace or without (as restore:netns).
  failpoint('restore:mounts');
  if (ns.mounts) {
    // Its mount tree before anything of it, or of the tree, is opened by path (root-path.ts).
    log.step('mounts', () => buildMounts(root, stub.trampoline, ns.mounts!, mountTargets(opts)));
    setTreeRoot(root.tid);
  }
  // After the root's namespaces exist: files opened by path are opened in its mount namespace.
  log.step('shared objects', () => createSharedObjects(session, made, netns));
  session.trampoline = stub.trampoline;
  killStub(stub);
  made.stub = null;
  // Each task's memory, files and state, top-down (see restoreTask for the order within one).
  restoreTask(root, img, session);
  restoreOwners(session);
  // Once every task of each PID namespace exists: the PID its next fork takes.
  restoreLastPids(ckpt.tasks);
}

/** --root, and the host paths of external mounts: --ext-mount-map KEY:PATH, --external mnt[KEY]:PATH. */
function mountTargets(opts: RestoreOptions): { root?: string; external: Map<string, string> } {
  const external = new Map(opts.extMounts ?? []);
  for (const s of opts.external ?? []) {
    const m = /^mnt\[([^\]]+)\]:(.+)$/.exec(s);
    if (m) external.set(m[1]!, m[2]!);
  }
  return { ...(opts.root ? { root: opts.root } : {}), external };
}

function newSession(ckpt: CheckpointImage, opts: RestoreOptions): RestoreSession {
  return {
    ckpt, log: opts.log, trampoline: 0n, shmemSizes: shmemSizes(ckpt.tasks.flatMap((t) => t.memory.vmas)),
    inherit: opts.inherit ?? new Map(), shmemOwners: new Map(),
    files: new Map(), sysvIds: new Map(), afterTableDone: new Set(),
    tracees: [], stopped: [], cowKept: 0, progress: new ProgressMeter('restore', opts.onProgress),
  };
}

/** Bytes of private memory the restore reads into the tasks (each address space once). */
function memoryBytes(ckpt: CheckpointImage): number {
  const byPid = new Map(ckpt.tasks.map((t) => [t.pid, t]));
  const own = ckpt.tasks.filter((t) => byPid.get(t.pstree.ppid)?.ids.vmId !== t.ids.vmId);
  return own.reduce((n, t) => n + t.memory.pages.reduce((m, p) => m + p.nrPages * PAGE_SIZE, 0), 0);
}

/** What the restore made outside the tasks, to undo on failure (the kinds undo their own). */
interface Made {
  /** SysV segments it created. */
  segments: number[];
  /** Until the root is cloned. */
  stub: Stub | null;
  tcp: TcpRestore | null;
  netns: NetnsRestore | null;
  cgroups: CgroupRestore | null;
  userns: MadeUserns | null;
}

/** Objects of the checkpoint that tasks share and that exist before any task does. */
function createSharedObjects(session: RestoreSession, made: Made, netns: NetnsRestore | null): void {
  const { ckpt } = session;
  // A socket belongs to the network namespace it was made in: the tree's own, when it has one.
  const inNetns = <T>(fn: () => T): T => (netns ? netns.run(fn) : fn());
  // Deleted files exist again while the tasks open and map them (removed before they run),
  // memfds, which the tasks map from our fds, and the sockets, each kind's all at once: peers,
  // names and queued data do not depend on who holds them.
  prepareKinds(session, inNetns);
  // In the root's own IPC namespace the segments are made there, once it exists (resources/ns).
  for (const g of ckpt.namespaces.own.has('ipc') ? [] : ckpt.sysvShm) {
    const { id, created } = createSegment(g);
    session.sysvIds.set(g.entry.desc.id, id);
    if (created) made.segments.push(id);
  }
}

/**
 * Lets the tree go: stopped tasks get their SIGSTOP before they run at all; then children and
 * threads first, the root last, so nothing runs before its whole tree is ready.
 */
function resume(session: RestoreSession): void {
  const { ckpt } = session;
  for (const pid of session.stopped) kill(pid, SIG.STOP);
  for (const t of [...session.tracees].reverse()) t.release();
  // Segments that were removed before the dump go once their last attachment does, again.
  const removed = ckpt.sysvShm.filter(wasRemoved).map((g) => session.sysvIds.get(g.entry.desc.id)!);
  if (ckpt.namespaces.own.has('ipc')) removeRemovedSegments(ckpt.tasks[0]!.pid, removed);
  else for (const id of removed) removeSegment(id);
}

function releaseLock(tcp: TcpRestore | null, log: Log): void {
  try {
    tcp?.releaseLock();
  } catch (e) {
    log.error((e as Error).message);
  }
}

/** The host-end names given with --external veth[INSIDE]:OUTSIDE, by inside name. */
function outsideNames(specs: string[]): Map<string, string> {
  const out = new Map<string, string>();
  for (const s of specs) {
    if (s.startsWith('mnt[')) continue; // mounts: mountTargets
    const m = /^veth\[([^\]]+)\]:(.+)$/.exec(s);
    if (!m) throw new UserError(`--external ${s}: not supported (only veth[INSIDE]:OUTSIDE and mnt[KEY]:PATH)`);
    out.set(m[1]!, m[2]!);
  }
  return out;
}

function isSubreaper(): boolean {
  const b = Buffer.alloc(4);
  sys('prctl', [PR.GET_CHILD_SUBREAPER, b, 0, 0, 0]);
  return b.readInt32LE(0) !== 0;
}

/** After a failure: kill every task created so far and reap each one, so nothing is left. */
function removeTree(session: RestoreSession, zombies: number[], ourChild: boolean, log: Log): void {
  for (const t of session.tracees) {
    try {
      process.kill(t.tgid, 'SIGKILL');
    } catch {
      /* gone */
    }
  }
  const root = session.tracees[0];
  // Deepest first: a PID namespace's init ends only once every task in it is reaped, and the
  // killed ones are traced, so they are ours to reap before their init can go.
  for (const t of session.tracees.slice(1).reverse()) reapKilled(t.tid);
  for (const z of zombies) reapKilled(z);
  if (root) {
    ptraceTry(PTRACE.DETACH, root.tid, 0, 0);
    if (ourChild) reap(root.tid);
    else waitPidGone(root.tid, 10_000, log);
  }
}

/**
 * Waits until a killed task is gone. We may have to wait for it twice: once as its tracer, then,
 * when its (also killed) parent is gone and it was handed to us as subreaper, as its parent.
 */
function reapKilled(tid: number): void {
  const deadline = Date.now() + 5000;
  while (pidExists(tid) && Date.now() < deadline) {
    try {
      wait4(tid, WAIT.WNOHANG);
    } catch {
      /* not ours (yet): its parent is still dying */
    }
    sleepMs(1);
  }
}

/** Waits for our child `pid` to end; returns its exit code (128+signal when killed). */
function reap(pid: number): number {
  for (;;) {
    let st;
    try {
      st = wait4(pid);
    } catch {
      return -1;
    }
    if (!st) continue;
    if (st.exited) return st.exitCode;
    if (st.signaled) return 128 + st.termSig;
    if (st.stopped && st.stopSig !== SIG.KILL) continue;
  }
}
