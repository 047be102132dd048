// Dumping one frozen task into its image messages: core (registers, signals, timers, creds ...),
// ids, fs, fd table, mm and the page ranges to save.
import { dumpTimerSlack } from '../resources/task/timerslack.js';
import { dumpPlacement } from '../resources/task/placement.js';
import { dumpSpeculation } from '../resources/task/speculation.js';
import { sharesWithDumper, DUMPER_KEY } from './ids.js';
import { readFileSync, readlinkSync, statSync } from 'node:fs';
import { create } from '@bufbuild/protobuf';
import { getXstate, SIG, kcmp, KCMP, PAGE_SIZE, type Regs } from '../sys/index.js';
import { regsToEntry, namingRestartedCall, readTaskCode } from '../resources/task/regs.js';
import { Scratch, SafeRemote, type ScratchArea, type Remote, type Tracee } from '../ptrace/index.js';
import { parseStat, parseStatus, parseMaps } from '../proc/index.js';
import { core_entrySchema, core_entry_march, type core_entry } from '../image/gen/core_pb.js';
import type { TaskPlan } from './collect.js';
import { fdinfo_entrySchema, fd_types, type fdinfo_entry } from '../image/gen/fdinfo_pb.js';
import { fs_entrySchema, type fs_entry } from '../image/gen/fs_pb.js';
import { mm_entrySchema, type mm_entry } from '../image/gen/mm_pb.js';
import { fpregsFromXsave } from '../image/xsave.js';
import { TASK_STATE } from '../image/task-state.js';
import { cpuXsaveLayout } from '../sys/index.js';

import { dumpSigactions, dumpSigaltstack } from '../resources/task/signals.js';
import { dumpItimers } from '../resources/task/timers.js';
import { dumpPosixTimers } from '../resources/task/posix-timers.js';
import { dumpCgroups, type CgroupMember } from '../resources/task/cgroup.js';
import { dumpTaskResources } from '../resources/task/registry.js';
import { dumpCreds } from '../resources/task/creds.js';
import { dumpTaskAttributes } from '../resources/task/attributes.js';
import { mceKillField } from '../resources/task/mce-kill.js';
import { dumpThreadState, rseqAbortIp } from '../resources/task/thread.js';
import { peekPending } from '../resources/task/pending.js';
import { dumpTls } from '../resources/task/tls.js';
import { planMemory, dumpMmFields, type PageRange, type ShmemRange } from '../resources/mm/dump.js';
import { dumpFds } from '../resources/files/fds.js';
import { dumpFs } from '../resources/fs.js';
import { fileStamp } from '../resources/files/reg.js';
import { NO_FOWN } from '../resources/files/fown.js';
import { deletedPath } from '../resources/files/ghost.js';
import { unlinkedName } from '../resources/files/other-name.js';
import { isMemfd } from '../resources/files/memfd.js';
import type { FileTable } from '../resources/files/table.js';
import { ReadQueue, type DumpTask, type IdAllocator } from '../resources/context.js';
import type { Log } from '../util/log.js';
import { failpoint } from '../util/failpoint.js';
import { pidForChildrenLink } from '../resources/ns/pid-nested.js';

export interface TaskImages {
  pid: number;
  ids: ReturnType<typeof taskIds>;
  core: core_entry;
  fs: fs_entry;
  fdinfo: fdinfo_entry[];
  mm: mm_entry;
  privatePages: PageRange[];
  shmemPages: ShmemRange[];
  sysvShm: { shmid: number; source: string }[];
  /** Its cgroups (cgroup.img set `core.tc.cgSet`). */
  cgroups: CgroupMember[];
  /** Where the task's registers and signal mask go back when it is released. */
  remote: Remote;
  scratch: Scratch;
}


/**
 * Takes over a frozen task for injected syscalls (scratch area, signals blocked), crash-safe: see
 * ptrace/safe-remote.ts. `sharer`: a task already open whose memory this one shares (its thread
 * leader, or the parent of a CLONE_VM child; that memory is saved with the sharer). `tasks`: how
 * many tasks will work in the area this one maps (itself and its threads).
 */
export function openTask(tracee: Tracee, log: Log, ids: IdAllocator, sharer?: DumpTask, tasks = 1, restarted: number | null = null): DumpTask {
  const pid = tracee.tid;
  const regs = tracee.regs();
  // Before anything runs in the task: the first injected syscall makes the kernel drop it.
  const rseqAbort = rseqAbortIp(pid, regs.get('ip'));
  const backTo = rseqAbort === null ? namedRestart(pid, regs, restarted) : atAbort(regs, rseqAbort);
  // A thread joins its leader's area; a CLONE_VM child maps one of its own (in the same memory),
  // so that every area has exactly one slot per task and an orphan leaves none of it behind.
  const remote = sharer && sharer.tracee.tgid === tracee.tgid ? SafeRemote.join(tracee, scratchArea(sharer), backTo) : SafeRemote.open(tracee, tasks, backTo);
  const area = remote.area;
  // A thread's reads go to its slot's own data page when it has one: it runs them beside the others'.
  const own = sharer && sharer.tracee.tgid === tracee.tgid ? remote.ownData : null;
  const scratch = own !== null ? Scratch.at(remote, own, PAGE_SIZE) : Scratch.at(remote, area.addr, area.dataSize);
  return {
    pid,
    tracee,
    remote,
    scratch,
    regs,
    rseqAbort,
    stat: parseStat(readFileSync(`/proc/${pid}/stat`, 'utf8')),
    status: parseStatus(readFileSync(`/proc/${pid}/status`, 'utf8')),
    // The area is one mapping, or two (data, then slots) when the task refuses write+execute.
    maps: sharer ? [] : parseMaps(readFileSync(`/proc/${pid}/maps`, 'utf8')).filter((m) => !(m.start >= area.addr && m.end <= area.addr + BigInt(area.size))),
    log,
    ids,
  };
}

function scratchArea(t: DumpTask): ScratchArea {
  if (!(t.remote instanceof SafeRemote)) throw new Error(`pid ${t.pid}: not opened for dumping`);
  return t.remote.area;
}

/**
 * The registers a task frozen in a timed wait (-ERESTART_RESTARTBLOCK) goes back to, with the call
 * it restarts named. Released normally, the kernel restarts it through its restart block (the
 * name changes nothing). Released by our crash, through its frame's rt_sigreturn (which resets
 * the restart block: restart_syscall would return EINTR), it issues the named call again.
 */
function namedRestart(pid: number, regs: Regs, restarted: number | null): Regs {
  const r = regs.clone();
  namingRestartedCall(r, readTaskCode(pid, r.get('ip') - 26n, 24), restarted);
  return r;
}

/** The registers of a thread frozen in an rseq critical section, moved to its abort handler. */
function atAbort(regs: Regs, abort: bigint): Regs {
  const r = regs.clone();
  r.set('ip', abort);
  r.set('orig_ax', -1n);
  return r;
}

/**
 * Puts the task back as it was (registers, mask; scratch unmapped by the task that mapped it); a
 * thread that was inside an rseq critical section goes on from the abort handler (see rseqAbortIp).
 */
export function closeTask(t: DumpTask): void {
  t.remote.restore();
}

/**
 * The per-thread half of a core image: registers, FPU, TLS, signal mask and thread state. The
 * thread's own reads of its state go into `q` (with, for a leader, its task's: one batch, a stop
 * or two, for all); the function gives the parts once `q` ran.
 */
function dumpThreadParts(t: DumpTask, q: ReadQueue) {
  const attrsOf = dumpTaskAttributes(t, q);
  const threadOf = dumpThreadState(t, q);
  const sasOf = dumpSigaltstack(t, q);
  const credsOf = dumpCreds(t, q);
  const speculationOf = dumpSpeculation(q);
  return () => threadParts(t, { attrsOf, threadOf, sasOf, credsOf, speculationOf });
}

function threadParts(t: DumpTask, read: {
  attrsOf: ReturnType<typeof dumpTaskAttributes>;
  threadOf: ReturnType<typeof dumpThreadState>;
  sasOf: ReturnType<typeof dumpSigaltstack>;
  credsOf: ReturnType<typeof dumpCreds>;
  speculationOf: ReturnType<typeof dumpSpeculation>;
}) {
  const tid = t.pid;
  const { attrsOf, threadOf, sasOf, credsOf, speculationOf } = read;
  const attrs = attrsOf();
  const thread = threadOf();
  const regs = t.regs.clone();
  namingRestartedCall(regs, readTaskCode(t.pid, regs.get('ip') - 26n, 24), t.restartedCall ?? null);
  const gpregs = regsToEntry(regs);
  if (t.rseqAbort !== null) {
    gpregs.ip = t.rseqAbort;
    gpregs.origAx = (1n << 64n) - 1n; // -1: not in a syscall any more, nothing to restart
  }
  const threadInfo = {
    clearTidAddr: thread.clearTidAddr,
    gpregs,
    fpregs: fpregsFromXsave(getXstate(tid), { layout: cpuXsaveLayout() }),
    tls: dumpTls(tid),
  };
  const threadCore = {
    futexRla: thread.robustHead,
    futexRlaLen: thread.robustLen,
    schedNice: attrs.schedNice,
    schedPolicy: attrs.schedPolicy,
    ...(attrs.schedPolicy !== 0 ? { schedPrio: attrs.schedPrio } : {}),
    sas: sasOf(),
    ...(attrs.pdeathSig ? { pdeathSig: attrs.pdeathSig } : {}),
    signalsP: { signals: peekPending(tid, false).map((siginfo) => ({ siginfo })) },
    creds: credsOf(),
    comm: attrs.comm,
    ...timerSlackField(tid),
    ...placementFields(tid),
    ...speculationField(speculationOf()),
    ...mceKillField(t.stat.flags),
    ...(thread.rseq
      ? { rseqEntry: { rseqAbiPointer: thread.rseq.ptr, rseqAbiSize: thread.rseq.size, signature: thread.rseq.signature } }
      : {}),
  };
  return { threadInfo, threadCore, attrs };
}

/** The speculation controls the thread chose, if any. */
function speculationField(pairs: number[]): { cryoSpeculation?: number[] } {
  return pairs.length ? { cryoSpeculation: pairs } : {};
}

/** Affinity and I/O priority, only where they differ from a new process's. */
function placementFields(tid: number): { cryoCpuAffinity?: bigint[]; cryoIoprio?: number } {
  const p = dumpPlacement(tid);
  return { ...(p?.affinity ? { cryoCpuAffinity: p.affinity } : {}), ...(p?.ioprio ? { cryoIoprio: p.ioprio } : {}) };
}

function timerSlackField(tid: number): { cryoTimerSlackNs?: bigint } {
  const slack = dumpTimerSlack(tid);
  return slack === null ? {} : { cryoTimerSlackNs: slack };
}

/**
 * Core images of a process's threads other than the leader: their own state, plus each one's
 * blocked mask. The threads with a data page of their own read their state side by side (their
 * stops overlap: ReadQueue.runAll); the others (sharing the leader's data) one after the other.
 */
export function dumpThreadCores(ts: DumpTask[]): core_entry[] {
  const queued = (t: DumpTask) => {
    t.scratch.reset();
    const q = new ReadQueue(t);
    return { q, partsOf: dumpThreadParts(t, q) };
  };
  const apart = new Map(ts.filter((t) => t.remote instanceof SafeRemote && t.remote.ownData !== null).map((t) => [t, queued(t)]));
  ReadQueue.runAll([...apart.values()].map((x) => x.q));
  return ts.map((t) => {
    let mine = apart.get(t);
    if (!mine) {
      mine = queued(t);
      mine.q.run();
    }
    return threadCore(t, mine.partsOf());
  });
}

function threadCore(t: DumpTask, { threadInfo, threadCore }: ReturnType<typeof threadParts>): core_entry {
  return create(core_entrySchema, {
    mtype: core_entry_march.X86_64,
    threadInfo,
    threadCore: { ...threadCore, blkSigset: t.remote.originalSigmask },
  });
}

/** `parentPid`: the task's parent, when it is in the tree too (pages they share are marked). */
export function dumpTask(t: DumpTask, files: FileTable, stopped = false, parentPid?: number): TaskImages {
  failpoint('dump:task');
  const { pid } = t;
  const ids = taskIds(t); // first: namespace ids are numbered in CRIU's order (pid, net, ...)
  // Every read the task makes of its own state, one batch (a stop or two, not one per module).
  t.scratch.reset();
  const q = new ReadQueue(t);
  const partsOf = dumpThreadParts(t, q);
  // The task resources' own fields (resources/task/registry.ts: rlimits, dumpable, modes).
  const ownOf = dumpTaskResources(t, q);
  const itimersOf = dumpItimers(t, q);
  const sigactionsOf = dumpSigactions(t, q);
  const mmFieldsOf = dumpMmFields(t, q);
  q.run();
  // Taken out of the scratch area now: later calls (POSIX timers) use it again.
  const { threadInfo, threadCore, attrs } = partsOf();
  const own = ownOf();
  const itimers = itimersOf();
  const sigactions = sigactionsOf();
  const cgroups = dumpCgroups(pid);
  const core = create(core_entrySchema, {
    mtype: core_entry_march.X86_64,
    threadInfo,
    tc: {
      taskState: stopped ? TASK_STATE.STOPPED : TASK_STATE.ALIVE,
      exitCode: 0,
      personality: attrs.personality,
      flags: t.stat.flags,
      blkSigset: t.remote.originalSigmask,
      comm: attrs.comm,
      timers: { ...itimers, posix: dumpPosixTimers(t) },
      cgSet: t.ids.id('cgset', JSON.stringify(cgroups)),
      // A stopped task holds the SIGCONT we sent to work in it: not part of its state.
      signalsS: {
        signals: peekPending(pid, true)
          .filter((si) => !(stopped && si.readInt32LE(0) === SIG.CONT))
          .map((siginfo) => ({ siginfo })),
      },
      loginuid: attrs.loginuid,
      oomScoreAdj: attrs.oomScoreAdj,
      sigactions,
      childSubreaper: attrs.childSubreaper,
      ...own.tc,
    },
    threadCore,
  });

  failpoint('dump:mm');
  const exeLink = readlinkSync(`/proc/${pid}/exe`);
  const exe = deletedPath(exeLink) ?? exeLink;
  const exeStat = statSync(`/proc/${pid}/exe`);
  const exeId = files.byName(
    { flags: 0, pos: 0n, fown: NO_FOWN, name: exe, mode: exeStat.mode, ...fileStamp(`/proc/${pid}/exe`, files.buildIds) },
    exe !== exeLink ? `/proc/${pid}/exe` : undefined,
  );
  const plan = planMemory(t, (m) => {
    const st = statSync(`/proc/${pid}/map_files/${m.start.toString(16)}-${m.end.toString(16)}`);
    const mapFile = `/proc/${pid}/map_files/${m.start.toString(16)}-${m.end.toString(16)}`;
    if (isMemfd(m.path)) return files.mappedMemfd(mapFile, m.path, NO_FOWN);
    // Unlinked from this name but linked under another: mapped by that one (other-name.ts).
    const other = m.deleted ? unlinkedName(pid, m.path, mapFile) : null;
    const name = other?.kind === 'linked' ? other.path : m.path;
    return files.byName(
      { flags: 0, pos: 0n, fown: NO_FOWN, name, mode: st.mode, ...(st.isFile() ? fileStamp(mapFile, files.buildIds) : { size: BigInt(st.size) }) },
      m.deleted && other?.kind !== 'linked' ? mapFile : undefined,
    );
  }, parentPid);
  const mm = create(mm_entrySchema, {
    ...mmFieldsOf(exeId),
    ...own.mm,
    ...(plan.mlockall ? { cryoMlockall: plan.mlockall } : {}),
    vmas: plan.vmas.map((v) => ({ ...v, fd: BigInt(v.fd) })),
  });

  failpoint('dump:files');
  files.netNsId = ids.netNsId;
  // A table shared with the parent was dumped with it.
  const sharedTable = files.dumpedTables.has(ids.filesId);
  files.dumpedTables.add(ids.filesId);
  const fdinfo = (sharedTable ? [] : dumpFds(pid, files)).map((f) => create(fdinfo_entrySchema, { ...f, type: fd_types[f.type] }));
  const fs = create(fs_entrySchema, dumpFs(t, files));
  return { pid, ids, core, fs, fdinfo, mm, cgroups, privatePages: plan.privatePages, shmemPages: plan.shmemPages, sysvShm: plan.sysvShm, remote: t.remote, scratch: t.scratch };
}


function taskIds(t: DumpTask) {
  const ns = (name: string) => {
    const link = readlinkSync(`/proc/${t.pid}/ns/${name}`);
    return t.ids.id('ns', link);
  };
  const key = String(t.pid);
  const forKids = pidForChildrenLink(t.pid);
  // Memory, an fd table, fs context or signal handlers shared with the parent get its id.
  const shared = (kind: string, type: number) => {
    const ppid = String(t.stat.ppid);
    if (sharesWithDumper(t.ids, kind, t.pid)) return t.ids.alias(kind, key, DUMPER_KEY);
    if (t.ids.has(kind, ppid) && kcmp(t.stat.ppid, t.pid, type) === 0) return t.ids.alias(kind, key, ppid);
    return t.ids.id(kind, key);
  };
  return {
    vmId: shared('vm', KCMP.VM),
    filesId: shared('files', KCMP.FILES),
    fsId: shared('fs', KCMP.FS),
    sighandId: shared('sighand', KCMP.SIGHAND),
    pidNsId: ns('pid'),
    netNsId: ns('net'),
    ipcNsId: ns('ipc'),
    utsNsId: ns('uts'),
    mntNsId: ns('mnt'),
    userNsId: ns('user'),
    cgroupNsId: ns('cgroup'),
    timeNsId: ns('time'),
    ...(forKids ? { cryoPidForChildrenNsId: t.ids.id('ns', forKids) } : {}),
  };
}

/** The core image of a zombie: only its exit status (CRIU's TASK_DEAD). */
export function zombieCore(t: TaskPlan): core_entry {
  return create(core_entrySchema, {
    mtype: core_entry_march.X86_64,
    tc: { taskState: TASK_STATE.DEAD, exitCode: t.exitStatus, personality: 0, flags: 0, blkSigset: 0n, comm: readComm(t.pid) },
  });
}

function readComm(pid: number): string {
  try {
    return readFileSync(`/proc/${pid}/comm`, 'utf8').trim();
  } catch {
    return '';
  }
}

