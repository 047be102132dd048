// Rebuilding one task inside a freshly cloned process that already has the right PID.
import { closeSync } from 'node:fs';
import {
  Regs, REG_NAMES, PR, O, CLONE, getXstate, setXstate, setSigmask, prlimit,
} from '../sys/index.js';
import { Remote, Scratch, findSyscallIn, injectClone3, type Tracee } from '../ptrace/index.js';
import type { core_entry } from '../image/gen/core_pb.js';
import { xsaveFromFpregs, setXsaveLayout } from '../image/xsave.js';
import { xsaveLayout } from '../sys/index.js';

setXsaveLayout(xsaveLayout());
import { dropStubMemory, restoreMemory, restoreVdso } from '../resources/mm/restore.js';
import { unregisterInheritedRseq, restoreThreadState } from '../resources/task/thread.js';
import { restoreSigactions, restoreSigaltstack } from '../resources/task/signals.js';
import { restoreItimers } from '../resources/task/timers.js';
import { queuePending } from '../resources/task/pending.js';
import { restoreTls } from '../resources/task/tls.js';
import { restoreCreds } from '../resources/task/creds.js';
import { restoreTaskMisc, restoreDumpable } from '../resources/task/misc.js';
import { registersForResume } from '../resources/task/regs.js';
import { restoreFs } from '../resources/fs.js';
import { openRegFile } from '../resources/files/reg.js';
import type { RestoreTask } from '../resources/context.js';
import type { TaskImage, CheckpointImage } from './images.js';
import { TRAMPOLINE_SIZE } from './stub.js';
import { UserError, hex } from '../util/errors.js';
import { failpoint } from '../util/failpoint.js';
import type { Log } from '../util/log.js';
import { PAGE_SIZE } from '../sys/index.js';

const F_DUPFD_CLOEXEC = 1030;
const F_SETFD = 2;

/** A thread being rebuilt: its tracee, injection context and image. */
interface ThreadWork {
  r: RestoreTask;
  core: core_entry;
}

/**
 * Rebuilds the task in `tracee` (the leader, just cloned with its PID) and creates its other
 * threads. Returns every thread's tracee, leader first, each stopped with its final registers.
 * `onThread` hears of each thread as soon as it exists, so a failure can remove it.
 */
export function restoreTask(
  tracee: Tracee,
  trampoline: bigint,
  img: TaskImage,
  ckpt: CheckpointImage,
  log: Log,
  onThread: (t: Tracee) => void,
): Tracee[] {
  const remote = new Remote(tracee, trampoline);
  const scratchAddr = trampoline + BigInt(PAGE_SIZE);
  const scratch = Scratch.at(remote, scratchAddr, TRAMPOLINE_SIZE - PAGE_SIZE);
  const r: RestoreTask = { pid: img.pid, tracee, remote, scratch, log, imageDir: ckpt.dir, restorerPid: process.pid };
  const call = remote.call.bind(remote);
  const tc = img.core.tc!;

  // What the stub handed down: its rseq registration, fds and memory.
  unregisterInheritedRseq(r);
  call('close_range', [0, 0xffffffff, 0]);
  dropStubMemory(r, trampoline, trampoline + BigInt(TRAMPOLINE_SIZE));
  // The exe link can only change while the old exe is not mapped: that is now, before the
  // image's own mappings (often of the same binary as the stub) come back.
  restoreMmFields(r, img, ckpt);
  restoreMemory(r, img.memory);
  const vdso = restoreVdso(r, img.memory.vmas);
  log.debug(`pid ${img.pid}: memory restored (${remote.count} injected syscalls so far)`);

  failpoint('restore:files');
  restoreFds(r, img, ckpt);

  failpoint('restore:task');
  const nameOf = (id: number) => {
    const f = ckpt.files.get(id);
    if (!f) throw new UserError(`fs-${img.pid}.img refers to file id ${id}, missing from files.img`);
    return f.name;
  };
  // Process-wide state first: the threads created next share it.
  restoreFs(r, img.fs, nameOf);
  restoreSigactions(r, tc.sigactions);
  restoreItimers(r, tc.timers && tc.timers.real && tc.timers.virt && tc.timers.prof
    ? { real: tc.timers.real, virt: tc.timers.virt, prof: tc.timers.prof } : undefined);
  restoreTaskMisc(r, {
    personality: tc.personality,
    childSubreaper: tc.childSubreaper,
    oomScoreAdj: tc.oomScoreAdj,
    loginuid: tc.loginuid,
  });
  restoreSession(r, img);
  if (tc.rlimits) tc.rlimits.rlimits.forEach((l, res) => prlimit(img.pid, res, { cur: l.cur, max: l.max }));

  // The other threads, with their TIDs, cloned by the leader at the trampoline.
  const work: ThreadWork[] = [{ r, core: img.core }];
  for (const th of img.threads) {
    scratch.reset();
    const t = injectClone3(remote, scratch.alloc(256), { flags: THREAD_FLAGS, exitSignal: 0, setTid: th.tid });
    onThread(t);
    const tr = new Remote(t, trampoline);
    work.push({ r: { ...r, pid: th.tid, tracee: t, remote: tr, scratch: Scratch.at(tr, scratchAddr, scratch.size) }, core: th.core });
  }

  failpoint('restore:creds');
  for (const w of work) restoreThread(w);
  restoreDumpable(r, img.mm.dumpable);
  queuePending(r, tc.signalsS?.signals.map((s) => s.siginfo) ?? [], true);

  // Last injected call: remove the trampoline, from a syscall instruction in the restored vdso.
  failpoint('restore:regs');
  if (vdso === null) throw new UserError(`pid ${img.pid}: image has no vdso — cannot finish the restore`);
  const vdsoVma = img.memory.vmas.find((v) => v.start === vdso)!;
  remote.syscallAt = findSyscallIn(img.pid, vdso, Number(vdsoVma.end - vdsoVma.start));
  call('munmap', [trampoline, TRAMPOLINE_SIZE], 'trampoline');

  for (const w of work) finishThread(w, w === work[0] ? tc.blkSigset : (w.core.threadCore?.blkSigset ?? 0n));
  return work.map((w) => w.r.tracee);
}

const THREAD_FLAGS = BigInt(CLONE.VM | CLONE.FS | CLONE.FILES | CLONE.SIGHAND | CLONE.THREAD | CLONE.SYSVSEM);

/** Per-thread state, set by each thread itself: alt stack, name, creds, rseq, futex lists. */
function restoreThread({ r, core }: ThreadWork): void {
  const tcore = core.threadCore;
  if (!tcore) return;
  restoreSigaltstack(r, tcore.sas);
  restoreTaskMisc(r, {
    comm: tcore.comm || core.tc?.comm,
    pdeathSig: tcore.pdeathSig,
    schedNice: tcore.schedNice,
    schedPolicy: tcore.schedPolicy,
    schedPrio: tcore.schedPrio,
  });
  restoreCreds(r, tcore.creds);
  restoreThreadState(r, {
    clearTidAddr: core.threadInfo!.clearTidAddr,
    robustHead: tcore.futexRla,
    robustLen: tcore.futexRlaLen,
    rseq: tcore.rseqEntry && tcore.rseqEntry.rseqAbiPointer
      ? { ptr: tcore.rseqEntry.rseqAbiPointer, size: tcore.rseqEntry.rseqAbiSize, signature: tcore.rseqEntry.signature }
      : null,
  });
  queuePending(r, tcore.signalsP?.signals.map((s) => s.siginfo) ?? [], false);
}

/** Final registers, FPU state, TLS slots and signal mask of one thread. */
function finishThread({ r, core }: ThreadWork, sigmask: bigint): void {
  const tid = r.pid;
  const regs = new Regs();
  const gp = core.threadInfo!.gpregs! as unknown as Record<string, bigint>;
  for (const n of REG_NAMES) regs.set(n, gp[n === 'orig_ax' ? 'origAx' : n === 'fs_base' ? 'fsBase' : n === 'gs_base' ? 'gsBase' : n] ?? 0n);
  r.remote.finish();
  r.tracee.setRegs(registersForResume(regs));
  restoreTls(tid, core.threadInfo!.tls);
  const fp = core.threadInfo!.fpregs;
  if (fp) setXstate(tid, xsaveFromFpregs(fp, getXstate(tid).length));
  setSigmask(tid, sigmask);
}

/** Installs the fd table: files opened here, pulled in by the task with pidfd_getfd. */
function restoreFds(r: RestoreTask, img: TaskImage, ckpt: CheckpointImage): void {
  const call = r.remote.call.bind(r.remote);
  if (!img.fdinfo.length) return;
  const maxFd = Math.max(...img.fdinfo.map((f) => f.fd));
  const pidfd0 = call('pidfd_open', [r.restorerPid, 0], 'pidfd of the restorer');
  const pidfd = call('fcntl', [pidfd0, F_DUPFD_CLOEXEC, maxFd + 1]);
  call('close', [pidfd0]);
  const ours = new Map<number, number>();
  try {
    for (const fi of img.fdinfo) {
      let fd = ours.get(fi.id);
      if (fd === undefined) {
        const reg = ckpt.files.get(fi.id);
        if (!reg) throw new UserError(`fdinfo for fd ${fi.fd} refers to file id ${fi.id}, missing from files.img`);
        fd = openRegFile(reg);
        ours.set(fi.id, fd);
      }
      const got = call('pidfd_getfd', [pidfd, fd, 0], `fd ${fi.fd}`);
      const cloexec = (fi.flags & 1) !== 0;
      if (got === BigInt(fi.fd)) {
        call('fcntl', [got, F_SETFD, cloexec ? 1 : 0]);
      } else {
        call('dup3', [got, fi.fd, cloexec ? O.CLOEXEC : 0], `fd ${fi.fd}`);
        call('close', [got]);
      }
    }
  } finally {
    for (const fd of ours.values()) closeSync(fd);
    r.remote.raw(3, [pidfd]);
  }
}

/** Session and process group: lead our own when we led them, else stay in the restorer's. */
function restoreSession(r: RestoreTask, img: TaskImage): void {
  const { pid, sid, pgid } = img.pstree;
  if (sid === pid) r.remote.call('setsid', [], 'new session');
  else if (pgid === pid) r.remote.call('setpgid', [0, 0], 'new process group');
  else r.log.warn(`pid ${pid}: session ${sid} / group ${pgid} are outside the image; it joins the restorer's`);
}

/** prctl(PR_SET_MM, PR_SET_MM_MAP): code/data/stack/brk/args/env bounds, auxv and exe file. */
function restoreMmFields(r: RestoreTask, img: TaskImage, ckpt: CheckpointImage): void {
  const mm = img.mm;
  const exe = ckpt.files.get(mm.exeFileId);
  if (!exe) throw new UserError(`mm-${img.pid}.img: exe file id ${mm.exeFileId} missing from files.img`);
  r.scratch.reset();
  const exeFd = r.remote.call('open', [r.scratch.putString(exe.name), O.RDONLY | O.CLOEXEC, 0], `exe ${exe.name}`);
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
  map.writeUInt32LE(Number(exeFd), 100);
  try {
    r.remote.call('prctl', [PR.SET_MM, PR.SET_MM_MAP, r.scratch.put(map), 104, 0], `mm map (brk ${hex(mm.mmBrk)})`);
  } finally {
    r.remote.raw(3, [exeFd]);
  }
}
