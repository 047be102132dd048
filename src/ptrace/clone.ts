// Injecting clone3 into a stopped task that we trace with PTRACE_O_TRACEFORK/TRACECLONE: the
// call stops in a fork/clone event (the new task is then auto-attached and starts stopped), and
// completes on the next step.
import { PTRACE, PTRACE_EVENT, PAGE_SIZE, ptrace, getEventMsg, vmWrite, NR } from '../sys/index.js';
import { Tracee, TraceeError } from './tracee.js';
import type { Remote, BatchArea, BatchCall } from './remote.js';

export const CLONE_ARGS_SIZE = 88;

export interface CloneArgs {
  flags: bigint;
  exitSignal: number;
  /**
   * The PID/TID the new task must get (clone3 set_tid): one number in the caller's PID
   * namespace, or one per level, innermost first (a task of a container: [inside, host]).
   */
  setTid: number | number[];
  /**
   * The PID clone3 must return, in the caller's namespace, when the default below does not
   * know it: a caller that joined a child PID namespace (setns) for its children forks there
   * without CLONE_NEWPID and gets the host's PID back.
   */
  returns?: number;
}

const CLONE_NEWPID = 0x20000000n;

/**
 * Runs clone3 in `remote`'s task with the arguments written at `argsAddr` (a writable page in the
 * task) and returns the new task, adopted and stopped. Throws with the kernel's errno on failure.
 */
export function injectClone3(remote: Remote, argsAddr: bigint, a: CloneArgs): Tracee {
  const t = remote.t;
  const wanted = writeCloneArgs(t.tid, argsAddr, a);
  const regs = remote.originalRegs;
  regs.set('ax', NR.clone3);
  regs.set('orig_ax', -1n);
  regs.set('di', argsAddr);
  regs.set('si', CLONE_ARGS_SIZE);
  regs.set('ip', remote.syscallAt);
  t.setRegs(regs);
  ptrace(PTRACE.SINGLESTEP, t.tid, 0, 0);
  let st = t.wait();
  if (st.stopped && (st.event === PTRACE_EVENT.FORK || st.event === PTRACE_EVENT.CLONE)) {
    const child = Number(getEventMsg(t.tid));
    ptrace(PTRACE.SINGLESTEP, t.tid, 0, 0);
    st = t.wait();
    const ret = t.regs().signed('ax');
    if (ret !== BigInt(wanted)) throw new TraceeError(t.tid, `clone3 returned ${ret}, wanted ${wanted}`);
    const thread = (a.flags & 0x10000n) !== 0n;
    return Tracee.adopt(child, thread ? t.tgid : child, t.options);
  }
  const ret = t.regs().signed('ax');
  throw new CloneError(tids(a)[tids(a).length - 1]!, Number(-ret), st.raw);
}

/** CLONE_ARGS_SIZE bytes at `at` and the set_tid array 128 past them; returns the PID clone3 must return. */
function writeCloneArgs(tid: number, at: bigint, a: CloneArgs): number {
  const tidArray = at + 128n;
  const ts = tids(a);
  if (128 + 4 * ts.length > PAGE_SIZE) throw new Error('unreachable');
  // clone3 returns the PID in the caller's namespace: the outer one of a new PID namespace's
  // init (set_tid[1]), else the innermost one (set_tid[0]), which a parent inside shares.
  const wanted = a.returns ?? ((a.flags & CLONE_NEWPID) !== 0n ? ts[1] ?? ts[0]! : ts[0]!);
  const args = Buffer.alloc(CLONE_ARGS_SIZE);
  args.writeBigUInt64LE(a.flags, 0);
  args.writeBigUInt64LE(BigInt(a.exitSignal), 32);
  args.writeBigUInt64LE(tidArray, 64); // set_tid
  args.writeBigUInt64LE(BigInt(ts.length), 72); // set_tid_size
  const tidBuf = Buffer.alloc(4 * ts.length);
  ts.forEach((v, i) => tidBuf.writeInt32LE(v, i * 4));
  vmWrite(tid, at, args);
  vmWrite(tid, tidArray, tidBuf);
  return wanted;
}

const tids = (a: CloneArgs) => (typeof a.setTid === 'number' ? [a.setTid] : a.setTid);

/** Room each clone of injectThreads takes in the scratch area: its clone_args and set_tid array. */
export const CLONE_SCRATCH = 256;

/**
 * Clones threads (CLONE_THREAD) of `remote`'s task in one batch: `argsAt[i]` (CLONE_SCRATCH
 * bytes of scratch memory each) holds thread i's clone_args. The leader stops at each clone's
 * event and once at the end, instead of three stops one after the other per thread (a single
 * step into the event, one out of it, and the wait for the new thread's first stop); the new
 * threads reach their first stops meanwhile, side by side. Each thread made is given to `made`,
 * adopted, before anything is thrown: a failed clone (the batch stops there) leaves none of them
 * unknown to the caller, who must kill and reap them with the rest.
 */
export function injectThreads(remote: Remote, area: BatchArea, argsAt: bigint[], list: CloneArgs[], made: (t: Tracee) => void): void {
  const t = remote.t;
  const wanted = list.map((a, i) => writeCloneArgs(t.tid, argsAt[i]!, a));
  const calls: BatchCall[] = wanted.map((w, i) => ({ name: 'clone3', args: [argsAt[i]!, CLONE_ARGS_SIZE], detail: `thread ${w}` }));
  const born: number[] = [];
  const results: bigint[] = [];
  try {
    for (const run of remote.batchRuns(calls, area)) results.push(...remote.endBatch(remote.startBatch(run, area), (tid) => born.push(tid)));
  } finally {
    for (const tid of born) made(Tracee.adopt(tid, t.tgid, t.options));
  }
  results.forEach((ret, i) => {
    if (ret !== BigInt(wanted[i]!)) throw new TraceeError(t.tid, `clone3 returned ${ret}, wanted ${wanted[i]}`);
  });
}

export class CloneError extends Error {
  constructor(readonly wanted: number, readonly errno: number, status: number) {
    super(
      errno === 17
        ? `PID ${wanted} is already in use`
        : `clone3 with set_tid ${wanted} failed (errno ${errno}, stop 0x${status.toString(16)})`,
    );
    this.name = 'CloneError';
  }
}
