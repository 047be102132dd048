// Rebuilding one task (and, through it, its children) inside a freshly cloned process that
// already has the right PID. Each thread's own state is restore/thread.ts.
import { PR, O, CLONE, SIG, PTRACE, NR, PAGE_SIZE, setSigmask, ptrace, WAIT } from '../sys/index.js';
import { Remote, Scratch, findSyscallIn, injectClone3, injectThreads, CLONE_SCRATCH, type Tracee } from '../ptrace/index.js';
import { task_core_entrySchema } from '../image/gen/core_pb.js';
import { mm_entrySchema } from '../image/gen/mm_pb.js';
import { hasField } from '../image/presence.js';
import { TASK_STATE } from '../image/task-state.js';
import { dropMemory, restoreMemory, restoreVdso, inheritedVmas } from '../resources/mm/restore.js';
import { installGuards, sealMappings, denyWriteExec, lockFutureMappings } from '../resources/mm/seal.js';
import { proxyVdso, vdsoSyscallArea } from '../resources/mm/vdso-image.js';
import { unregisterInheritedRseq } from '../resources/task/thread.js';
import { restoreSigactions, restoreIgnoredSigtrap, reapsChildren, restoreSigchld } from '../resources/task/signals.js';
import { restoreItimers } from '../resources/task/timers.js';
import { restorePosixTimers, isTimersOwn, timerSignalsOf } from '../resources/task/posix-timers.js';
import { restoreCgroups } from '../resources/task/cgroup.js';
import { queuePending } from '../resources/task/pending.js';
import { restoreTaskAttributes } from '../resources/task/attributes.js';
import { TASK_RESOURCES } from '../resources/task/registry.js';
import type { TaskStage } from '../resources/task/resource.js';
import { restoreFs } from '../resources/fs.js';
import { restoreLocks } from '../resources/files/locks.js';
import { CallQueue, type RestoreTask } from '../resources/context.js';
import { VMA } from '../resources/mm/vma-kind.js';
import type { TaskImage, CheckpointImage, ZombieImage } from './images.js';
import type { RestoreSession } from './files.js';
import { restoreFds, restoreFdsAfterChildren } from './fds.js';
import { FD_KINDS } from '../resources/files/registry.js';
import type { AnyFdKind } from '../resources/files/fd-kind.js';
import { TRAMPOLINE_BASE, TRAMPOLINE_SIZE, THREAD_SLOTS, THREAD_SLOT_SIZE } from './stub.js';
import { UserError, hex } from '../util/errors.js';
import { failpoint } from '../util/failpoint.js';
import { setTidArray, threadNsPid, localPids, type LocalPid } from '../resources/ns/pid.js';
import { startsPidNamespace, restorePidForChildren, nestedOf } from '../resources/ns/pid-nested.js';
import { restoreThreads, finishThread, fitsSlot, type ThreadWork } from './thread.js';
import { enterUserns } from '../resources/ns/user-restore.js';



/**
 * Rebuilds the task in `tracee` (its leader, just cloned with its PID), forks and rebuilds its
 * children, and creates its other threads. Every thread ends stopped with its final registers,
 * recorded in session.tracees. `parent`: the image of the task it was forked from, if any.
 */
export function restoreTask(
  tracee: Tracee,
  img: TaskImage,
  session: RestoreSession,
  parent?: TaskImage,
  from?: { sid: number; pgid: number },
): void {
  const { ckpt, log, trampoline } = session;
  const remote = new Remote(tracee, trampoline);
  const scratchAddr = trampoline + BigInt(PAGE_SIZE);
  const scratch = Scratch.at(remote, scratchAddr, TRAMPOLINE_BASE - PAGE_SIZE);
  // The trampoline's first page holds its `syscall; int3` and, past them, batches of calls.
  const batchCode = { at: trampoline + BigInt(BATCH_CODE_OFFSET), size: PAGE_SIZE - BATCH_CODE_OFFSET };
  const parked = session.restorerPidfd;
  const r: RestoreTask = { pid: img.pid, tracee, remote, scratch, log, restorerPid: process.pid, batchCode, ...(parked !== undefined ? { restorerPidfd: parked } : {}) };
  const call = remote.call.bind(remote);
  const tc = img.core.tc!;
  const userns = session.userns && img.ids.userNsId === session.userns.id ? session.userns : undefined;

  // What the stub or the parent handed down: rseq registration, fds and memory. Mappings
  // identical to the parent's are kept, so copy-on-write sharing survives the restore.
  unregisterInheritedRseq(r);
  // Into its cgroups before its memory comes back, so that the pages are charged there.
  const cgroups = hasField(task_core_entrySchema, tc, 'cgSet') ? ckpt.cgroups.get(tc.cgSet) : undefined;
  if (cgroups) restoreCgroups(img.pid, cgroups);
  // A task that shares its parent's memory (CLONE_VM), fd table (CLONE_FILES), fs context
  // (CLONE_FS) or signal handlers (CLONE_SIGHAND) got them restored already, with the parent's.
  const shares = (kind: 'vmId' | 'filesId' | 'fsId' | 'sighandId') => parent !== undefined && img.ids[kind] === parent.ids[kind];
  const sharesVm = shares('vmId');
  // The task resources (resources/task/registry.ts) of one stage; an address space's once.
  const resourcesAt = (stage: TaskStage) => {
    for (const res of TASK_RESOURCES) if (res.stage === stage && !(res.perMm && sharesVm)) res.restore(r, { pid: img.pid, tc, mm: img.mm });
  };
  const sharesFiles = shares('filesId');
  if (!sharesFiles && parked !== undefined) {
    call('close_range', [0, parked - 1, 0]); // all but the inherited pidfd of cryo (closed below)
    call('close_range', [parked + 1, 0xffffffff, 0]);
  } else if (!sharesFiles) call('close_range', [0, 0xffffffff, 0]);
  let vdso: bigint | null = null;
  if (!sharesVm) {
    const kept = inheritedVmas(img.memory, parent?.memory);
    dropMemory(r, [{ start: trampoline, end: trampoline + BigInt(TRAMPOLINE_SIZE) }, ...kept]);
    // The exe link can only change while the old exe is not mapped: that is now, before the
    // image's own mappings (often of the same binary) come back.
    const sameExe = parent !== undefined && ckpt.files.get(parent.mm.exeFileId)?.name === ckpt.files.get(img.mm.exeFileId)?.name;
    restoreMmFields(r, img, ckpt, !sameExe);
    // Before the mappings come back, as when the program set them: THP disabled, KSM merge-any.
    resourcesAt('before-mappings');
    const mem = restoreMemory(r, img.memory, { parent: parent?.memory, shmemOwners: session.shmemOwners, sysvIds: session.sysvIds, unchecked: ckpt.kindImages.madePaths, shmemSizes: session.shmemSizes }, kept);
    session.cowKept += mem.cowKept;
    session.progress.bytes(img.memory.pages.reduce((n, p) => n + p.nrPages * PAGE_SIZE, 0));
    const keptVdso = [...kept].find((v) => v.status & VMA.AREA_VDSO);
    const plan = img.memory.vdso;
    const busy = [...img.memory.vmas, { start: trampoline, end: trampoline + BigInt(TRAMPOLINE_SIZE) }];
    vdso = keptVdso ? keptVdso.start : plan?.kind === 'proxy' ? proxyVdso(r, plan, busy) : restoreVdso(r, img.memory.vmas);
    log.debug(`pid ${img.pid}: memory restored (${remote.count} injected syscalls, ${mem.cowKept} pages left shared)`);
  }

  failpoint('restore:files');
  if (!sharesFiles) {
    restoreFds(r, img, session);
    restoreLocks(r, session.ckpt.locks.get(img.pid) ?? []);
  }

  failpoint('restore:task');
  const nameOf = (id: number) => {
    const f = ckpt.files.get(id);
    if (!f) throw new UserError(`fs-${img.pid}.img refers to file id ${id}, missing from files.img`);
    return f.name;
  };
  // Process-wide state first: the threads and children created next share or inherit it.
  // A SIGCHLD that reaps children waits for this task's zombies (reapsChildren).
  const holdSigchld = !shares('sighandId') && reapsChildren(tc.sigactions) && ckpt.zombies.some((z) => z.ppid === img.pid);
  if (!shares('sighandId')) restoreSigactions(r, tc.sigactions, holdSigchld);
  // The fs context, interval timers and attributes: one batch (their strings and structs in the
  // scratch area until it runs).
  r.scratch.reset();
  const attrs = new CallQueue(r);
  if (!shares('fsId')) restoreFs(r, img.fs, nameOf, attrs);
  restoreItimers(r, tc.timers && tc.timers.real && tc.timers.virt && tc.timers.prof
    ? { real: tc.timers.real, virt: tc.timers.virt, prof: tc.timers.prof } : undefined, attrs);
  restoreTaskAttributes(r, {
    personality: tc.personality,
    childSubreaper: tc.childSubreaper,
    oomScoreAdj: hasField(task_core_entrySchema, tc, 'oomScoreAdj') ? tc.oomScoreAdj : undefined,
    loginuid: hasField(task_core_entrySchema, tc, 'loginuid') ? tc.loginuid : undefined,
  }, attrs);
  attrs.flush();
  restoreSessionAndGroup(r, img, from ?? (parent ? { sid: parent.pstree.sid, pgid: parent.pstree.pgid } : undefined), localPids(ckpt));
  // Before any fork: a session leader takes its controlling terminal (inherited at fork only).
  for (const k of FD_KINDS as readonly AnyFdKind[]) k.afterSetsid?.(r, ckpt.kindImages);

  // Children: forked here (so they inherit this task's memory), then rebuilt, top-down. A child
  // in a session or group whose leader is gone is forked through helpers that hold the leader's
  // PID just long enough to create it.
  const helpers = new Map<number, Remote>();
  for (const child of ckpt.tasks.filter((t) => t.pstree.ppid === img.pid)) {
    const { forker, from } = forkerFor(child, img, ckpt, remote, helpers, session);
    scratch.reset();
    const viaHelper = forker !== remote;
    const share =
      (child.ids.vmId === img.ids.vmId ? CLONE.VM : 0) |
      (child.ids.sighandId === img.ids.sighandId ? CLONE.SIGHAND : 0) |
      (child.ids.filesId === img.ids.filesId ? CLONE.FILES : 0) |
      (child.ids.fsId === img.ids.fsId ? CLONE.FS : 0);
    if (share && viaHelper) throw new UserError(`pid ${child.pid}: shares memory, fd table or cwd with its parent but needs helpers to be forked — not supported yet`);
    // The init of a PID namespace nested below its parent's starts it (pid-nested.ts).
    const newPid = startsPidNamespace(nestedOf(child), nestedOf(img)) ? CLONE.NEWPID : 0;
    const ct = injectClone3(forker, scratch.alloc(256), {
      flags: viaHelper ? BigInt(CLONE.PARENT | newPid) : BigInt(share | newPid),
      exitSignal: viaHelper ? 0 : SIG.CHLD,
      setTid: setTidArray(child.pid, child.pstree.cryoNsPid),
    });
    session.tracees.push(ct);
    restoreTask(ct, child, session, img, from);
  }
  for (const [hpid, h] of [...helpers].reverse()) {
    exitTask(h.t, 0, trampoline);
    call('wait4', [hpid, 0, WAIT.WALL, 0], `reap helper ${hpid}`);
  }
  const zombies = ckpt.zombies.filter((t) => t.ppid === img.pid);
  for (const z of zombies) {
    scratch.reset();
    const zt = injectClone3(remote, scratch.alloc(256), { flags: 0n, exitSignal: SIG.CHLD, setTid: setTidArray(z.pid, z.nsPid) });
    makeZombie(zt, z, img.pstree, trampoline, localPids(ckpt));
  }
  if (holdSigchld) restoreSigchld(r, tc.sigactions);
  // A parent that had unshared CLONE_NEWPID: its later children go into its child's namespace.
  restorePidForChildren(remote, nestedOf(img), ckpt.tasks.map(nestedOf));
  if (helpers.size || zombies.length) {
    // The helpers' and zombies' deaths queued a SIGCHLD the task does not have (a traced task
    // queues even an ignored one; the image's own pending signals come back later): take it
    // back (zero timeout).
    scratch.reset();
    const set = Buffer.alloc(8);
    set.writeBigUInt64LE(1n << BigInt(SIG.CHLD - 1));
    remote.raw(NR.rt_sigtimedwait, [scratch.put(set), 0, scratch.put(Buffer.alloc(16)), 8]);
  }

  // Limits once the children are made: a child may have kept a hard limit higher than its
  // parent's (lowered after the fork), which it could not get back without CAP_SYS_RESOURCE.
  resourcesAt('after-children'); // rlimits

  // The other threads, with their TIDs, cloned by the leader at the trampoline.
  const work: ThreadWork[] = [{ r, core: img.core, groupsSet: userns !== undefined }];
  const levels = img.pstree.cryoNsPid.length;
  // Cloned CLONES_PER_BATCH at a time, a batch each (injectThreads: a stop per thread, not three).
  const born = new Map<number, Tracee>();
  for (let i = 0; i < img.threads.length; i += CLONES_PER_BATCH) {
    scratch.reset();
    const part = img.threads.slice(i, i + CLONES_PER_BATCH).map((th) => ({
      flags: THREAD_FLAGS, exitSignal: 0, setTid: setTidArray(th.tid, threadNsPid(img.pstree.cryoNsThreads, levels, img.pstree.threads.indexOf(th.tid))),
    }));
    const argsAt = part.map(() => scratch.alloc(CLONE_SCRATCH));
    const area = { codeAt: batchCode.at, codeSize: batchCode.size, resultsAt: scratch.alloc(8 * part.length) };
    injectThreads(remote, area, argsAt, part, (t) => {
      session.tracees.push(t);
      born.set(t.tid, t);
    });
  }
  for (const [i, th] of img.threads.entries()) {
    const t = born.get(th.tid);
    if (!t) throw new UserError(`pid ${img.pid}: thread ${th.tid} was not made`);
    const tr = new Remote(t, trampoline);
    // A slot of its own, when one is free and its state fits: its batches then run beside the others'.
    const slot = i < THREAD_SLOTS && fitsSlot(th.core) ? trampoline + BigInt(TRAMPOLINE_BASE + i * THREAD_SLOT_SIZE) : null;
    const area = slot === null
      ? { scratch: Scratch.at(tr, scratchAddr, scratch.size) }
      : { scratch: Scratch.at(tr, slot + BigInt(PAGE_SIZE), THREAD_SLOT_SIZE - PAGE_SIZE), batchCode: { at: slot, size: PAGE_SIZE } };
    work.push({ r: { ...r, pid: th.tid, tracee: t, remote: tr, ...area }, core: th.core, ownArea: slot !== null });
  }

  // A terminal's foreground group, from its leader, once it exists.
  for (const k of FD_KINDS as readonly AnyFdKind[]) k.afterChildren?.(r, ckpt.kindImages);
  // fds that name tasks (pidfds) once the task's children, zombies and threads exist.
  if (!sharesFiles) restoreFdsAfterChildren(r, img, session);
  // Into the tree's user namespace once nothing more needs cryo's privileges here (its children
  // are forked with set_tid, its fds are in): its credentials are the namespace's ids.
  if (userns) enterUserns(r, userns.fd, userns.state, img.core.threadCore?.creds?.groups ?? []);
  if (!sharesFiles && parked !== undefined) call('close', [parked], 'the pidfd of cryo');

  // POSIX timers once every thread they may signal exists, before credentials change.
  const shared = tc.signalsS?.signals.map((s) => s.siginfo) ?? [];
  const privates = work.flatMap((w) => w.core.threadCore?.signalsP?.signals.map((s) => s.siginfo) ?? []);
  const timerSignals = timerSignalsOf(tc.timers?.posix ?? [], [...shared, ...privates]);
  restorePosixTimers(r, tc.timers?.posix ?? [], localPids(ckpt), timerSignals);

  failpoint('restore:creds');
  restoreThreads(work, ckpt, timerSignals);
  resourcesAt('after-creds'); // the dumpable flag (a change of credentials resets it)
  queuePending(r, shared.filter((i) => !isTimersOwn(timerSignals, i)), true);

  // Last injected call: remove the trampoline, from a syscall instruction in the restored vdso
  // (a task sharing the parent's memory leaves that to the parent, which still needs it).
  failpoint('restore:regs');
  // Sealed mappings are sealed last: nothing maps, protects or advises them any more.
  if (!sharesVm) installGuards(r, img.memory);
  if (!sharesVm) sealMappings(r, img.memory);
  if (!sharesVm && hasField(mm_entrySchema, img.mm, 'cryoMdwe')) denyWriteExec(r, img.mm.cryoMdwe ?? 0);
  if (!sharesVm && hasField(mm_entrySchema, img.mm, 'cryoMlockall')) lockFutureMappings(r, img.mm.cryoMlockall ?? 0);
  // No single step after this point: an ignored SIGTRAP would not survive one.
  if (!shares('sighandId')) restoreIgnoredSigtrap(r, tc.sigactions);
  if (!sharesVm) {
    if (vdso === null) throw new UserError(`pid ${img.pid}: image has no vdso — cannot finish the restore`);
    const area = vdsoSyscallArea(img.memory.vdso, img.memory.vmas, vdso);
    remote.syscallAt = findSyscallIn(img.pid, area.start, area.len);
    remote.callWithoutStep('munmap', [trampoline, TRAMPOLINE_SIZE], 'trampoline');
  }

  for (const w of work) finishThread(w, w === work[0] ? tc.blkSigset : (w.core.threadCore?.blkSigset ?? 0n));
  if (tc.taskState === TASK_STATE.STOPPED) session.stopped.push(img.pid);
  session.progress.task();
}

const BATCH_CODE_OFFSET = 64;
/** Threads cloned per batch: their clone_args fill the scratch pages. */
const CLONES_PER_BATCH = 128;

/**
 * The task to fork `child` from, and the session and group the child starts in. Normally the
 * parent itself. When the child's session or group leader is gone (not in the tree), helpers
 * with the leader's PID are forked first: one calls setsid() (it leads the session and a group
 * of the same id), the next setpgid(0, 0); each next one is forked from the previous with
 * CLONE_PARENT, so every helper and the child stay the parent's children.
 */
function forkerFor(
  child: TaskImage,
  parent: TaskImage,
  ckpt: CheckpointImage,
  parentRemote: Remote,
  helpers: Map<number, Remote>,
  session: RestoreSession,
): { forker: Remote; from: { sid: number; pgid: number } } {
  const { pid, sid, pgid } = child.pstree;
  const inTree = (p: number) => ckpt.tasks.some((t) => t.pid === p) || ckpt.zombies.some((z) => z.pid === p);
  let forker = parentRemote;
  let from = { sid: parent.pstree.sid, pgid: parent.pstree.pgid };
  const helper = (hpid: number, leads: 'session' | 'group'): void => {
    let h = helpers.get(hpid);
    // Inside a PID namespace the gone leader's PID there is unknown: no helper can stand in.
    if (!h && child.pstree.cryoNsPid.length) throw new UserError(`pid ${pid}: its ${leads} leader ${hpid} is gone and the task is in a PID namespace of its own — not supported yet`);
    if (!h) {
      const args = session.trampoline + BigInt(PAGE_SIZE) + 2048n; // clone args, in the scratch area
      const viaHelper = forker !== parentRemote;
      const t = injectClone3(forker, args, {
        flags: viaHelper ? BigInt(CLONE.PARENT) : 0n,
        exitSignal: viaHelper ? 0 : SIG.CHLD,
        setTid: hpid,
      });
      session.tracees.push(t);
      h = new Remote(t, session.trampoline);
      if (leads === 'session') h.call('setsid', [], `helper for session ${hpid}`);
      else h.call('setpgid', [0, 0], `helper for process group ${hpid}`);
      helpers.set(hpid, h);
    }
    forker = h;
  };
  if (sid !== pid && sid !== from.sid) {
    if (inTree(sid)) throw new UserError(`pid ${pid}: its session ${sid} is led by another task of the tree — not supported yet`);
    helper(sid, 'session');
    from = { sid, pgid: sid };
  }
  if (pgid !== pid && pgid !== from.pgid && !inTree(pgid)) {
    helper(pgid, 'group');
    from = { sid: from.sid, pgid };
  }
  return { forker, from };
}

/** A zombie: a fresh child that exits at once the way the dumped one did; its parent reaps it. */
function makeZombie(t: Tracee, z: ZombieImage, parent: { sid: number; pgid: number }, trampoline: bigint, local: LocalPid): void {
  const remote = new Remote(t, trampoline);
  const scratch = Scratch.at(remote, trampoline + BigInt(PAGE_SIZE), TRAMPOLINE_BASE - PAGE_SIZE);
  remote.call('prctl', [PR.SET_NAME, scratch.putString(z.comm.slice(0, 15)), 0, 0, 0], 'zombie comm');
  // Its session and group as it left them (a shell's job that died leads its own group).
  if (z.sid === z.pid) remote.call('setsid', [], `zombie ${z.pid} session`);
  else if (z.sid !== parent.sid) throw new UserError(`zombie ${z.pid}: its session ${z.sid} is not its parent's — not supported yet`);
  if (z.pgid !== parent.pgid && z.sid !== z.pid) remote.call('setpgid', [0, z.pgid === z.pid ? 0 : local(z.pgid, z.nsPid.length)], `zombie ${z.pid} process group ${z.pgid}`);
  const termsig = z.exitStatus & 0x7f;
  // Default action for the signal it died of, which it then sends itself.
  if (termsig) remote.call('rt_sigaction', [termsig, 0, 0, 8]);
  remote.finish();
  exitTask(t, termsig ? { signal: termsig, pid: t.ownIds().tid } : (z.exitStatus >> 8) & 0xff, trampoline);
}

/**
 * Makes a task we hold end: exit_group(code), or kill itself with a signal; waits (as its tracer)
 * until it is dead, so it is then its parent's zombie.
 */
function exitTask(t: Tracee, how: number | { signal: number; pid: number }, trampoline: bigint): void {
  const regs = t.regs();
  regs.set('orig_ax', -1n);
  regs.set('ip', trampoline);
  if (typeof how === 'number') {
    regs.set('ax', NR.exit_group);
    regs.set('di', how);
  } else {
    regs.set('ax', NR.kill);
    regs.set('di', how.pid);
    regs.set('si', how.signal);
  }
  t.setRegs(regs);
  setSigmask(t.tid, 0n);
  ptrace(PTRACE.CONT, t.tid, 0, 0);
  for (let i = 0; i < 10; i++) {
    const st = t.wait();
    if (st.exited || st.signaled) return;
    ptrace(PTRACE.CONT, t.tid, 0, st.event ? 0 : st.stopSig);
  }
  throw new UserError(`pid ${t.tid}: did not exit as it should`);
}

const THREAD_FLAGS = BigInt(CLONE.VM | CLONE.FS | CLONE.FILES | CLONE.SIGHAND | CLONE.THREAD | CLONE.SYSVSEM);

/**
 * Session and process group. `from`: the ones the task was forked into (undefined for the root).
 * A task that led one leads it again; a group led by another task of the tree is joined.
 */
function restoreSessionAndGroup(r: RestoreTask, img: TaskImage, from: { sid: number; pgid: number } | undefined, local: LocalPid): void {
  const { pid, sid, pgid } = img.pstree;
  if (sid === pid) r.remote.call('setsid', [], 'new session');
  else if (from && sid !== from.sid) throw new UserError(`pid ${pid}: could not be put in its session ${sid}`);
  if (pgid === pid) {
    if (sid !== pid) r.remote.call('setpgid', [0, 0], 'new process group');
  } else if (from && pgid !== from.pgid) {
    r.remote.call('setpgid', [0, local(pgid, img.pstree.cryoNsPid.length)], `process group ${pgid}`);
  } else if (!from && sid !== pid) {
    r.log.warn(`pid ${pid}: session ${sid} / group ${pgid} are outside the image; it joins the restorer's`);
  }
}

/** prctl(PR_SET_MM, PR_SET_MM_MAP): code/data/stack/brk/args/env bounds, auxv and exe file. */
function restoreMmFields(r: RestoreTask, img: TaskImage, ckpt: CheckpointImage, setExe: boolean): void {
  const mm = img.mm;
  const exe = ckpt.files.get(mm.exeFileId);
  if (!exe) throw new UserError(`mm-${img.pid}.img: exe file id ${mm.exeFileId} missing from files.img`);
  r.scratch.reset();
  // -1: keep the exe link inherited from the parent (it is the same file).
  const exeFd = setExe ? r.remote.call('open', [r.scratch.putString(exe.name), O.RDONLY | O.CLOEXEC, 0], `exe ${exe.name}`) : -1n;
  const auxv = Buffer.alloc(8 * Math.max(2, mm.mmSavedAuxv.length));
  mm.mmSavedAuxv.forEach((v, i) => auxv.writeBigUInt64LE(v, i * 8));
  const auxvAddr = r.scratch.put(auxv);
  const map = Buffer.alloc(104);
  const fields = [
    mm.mmStartCode, mm.mmEndCode, mm.mmStartData, mm.mmEndData, mm.mmStartBrk, mm.mmBrk, mm.mmStartStack,
    mm.mmArgStart, mm.mmArgEnd, mm.mmEnvStart, mm.mmEnvEnd, auxvAddr,
  ];
  fields.forEach((v, i) => map.writeBigUInt64LE(v, i * 8));
  map.writeUInt32LE(auxv.length, 96);
  map.writeUInt32LE(Number(BigInt.asUintN(32, exeFd)), 100);
  try {
    r.remote.call('prctl', [PR.SET_MM, PR.SET_MM_MAP, r.scratch.put(map), 104, 0], `mm map (brk ${hex(mm.mmBrk)})`);
  } finally {
    if (exeFd >= 0n) r.remote.raw(NR.close, [exeFd]);
  }
}
