// The stub: a throwaway process of ours, seized, in which the restorer injects the clone3 that
// creates a task with its original PID. It is spawned with posix_spawn (not Node's
// child_process) so libuv never reaps its ptrace stops.
import { existsSync, readFileSync } from 'node:fs';
import {
  posixSpawn, PTRACE_O, PROT, MAP, PAGE_SIZE, CLONE, SIG, PTRACE, PTRACE_EVENT, ptrace, getEventMsg, vmWrite, wait4,
  pidExists,
} from '../sys/index.js';
import { Tracee, Remote, findSyscallInVdso, TraceeError } from '../ptrace/index.js';
import { parseMaps } from '../proc/index.js';
import { UserError, hex } from '../util/errors.js';

export const TRAMPOLINE_SIZE = 16 * PAGE_SIZE;
/** syscall; int3 — the int3 only guards against running past the syscall. */
const TRAMPOLINE_CODE = Buffer.from([0x0f, 0x05, 0xcc]);

function sleepBinary(): string {
  for (const p of ['/usr/bin/sleep', '/bin/sleep']) if (existsSync(p)) return p;
  throw new UserError('no sleep binary (/usr/bin/sleep) to use as the restore stub');
}

export interface Stub {
  tracee: Tracee;
  remote: Remote;
  trampoline: bigint;
}

/** Lowest TRAMPOLINE_SIZE gap above 4 GiB that overlaps none of `busy`. */
export function findGap(busy: { start: bigint; end: bigint }[]): bigint {
  const sorted = [...busy].sort((a, b) => (a.start < b.start ? -1 : 1));
  let cand = 0x100000000n;
  for (const r of sorted) {
    if (r.end <= cand) continue;
    if (r.start >= cand + BigInt(TRAMPOLINE_SIZE)) break;
    cand = r.end;
  }
  return cand;
}

export function startStub(imageVmas: { start: bigint; end: bigint }[], avoidPid: number): Stub {
  let pid = posixSpawn(sleepBinary(), ['sleep', '1000000'], []);
  if (pid === avoidPid) {
    // The stub took the very PID we want: drop it and take another.
    const again = posixSpawn(sleepBinary(), ['sleep', '1000000'], []);
    process.kill(pid, 'SIGKILL');
    wait4(pid);
    pid = again;
  }
  let tracee: Tracee;
  try {
    tracee = Tracee.seize(pid, pid, PTRACE_O.TRACEFORK | PTRACE_O.TRACECLONE | PTRACE_O.EXITKILL);
  } catch (e) {
    process.kill(pid, 'SIGKILL');
    wait4(pid);
    throw e;
  }
  try {
    const remote = new Remote(tracee, findSyscallInVdso(pid));
    const stubMaps = parseMaps(readFileSync(`/proc/${pid}/maps`, 'utf8')).filter((m) => m.path !== '[vsyscall]');
    const trampoline = findGap([...imageVmas.filter((v) => v.start < 0x800000000000n), ...stubMaps]);
    remote.call(
      'mmap',
      [trampoline, TRAMPOLINE_SIZE, PROT.READ | PROT.WRITE | PROT.EXEC, MAP.PRIVATE | MAP.ANONYMOUS | MAP.FIXED_NOREPLACE, -1, 0],
      `trampoline at ${hex(trampoline)}`,
    );
    vmWrite(pid, trampoline, TRAMPOLINE_CODE);
    return { tracee, remote, trampoline };
  } catch (e) {
    killStub({ tracee } as Stub);
    throw e;
  }
}

/**
 * Runs clone3(set_tid = [pid]) in the stub, at the trampoline. The new task is a child of the
 * stub's parent (CLONE_PARENT: ours), is auto-attached (PTRACE_O_TRACEFORK) and starts stopped.
 */
export function forkWithPid(stub: Stub, pid: number, asOurChild: boolean): Tracee {
  const argsAddr = stub.trampoline + BigInt(PAGE_SIZE);
  const tidArray = argsAddr + 128n;
  const args = Buffer.alloc(88);
  if (asOurChild) {
    // exit_signal stays 0: with CLONE_PARENT the child inherits the stub's (SIGCHLD), and the
    // kernel refuses any other value. ptrace then reports a clone event, not a fork event.
    args.writeBigUInt64LE(BigInt(CLONE.PARENT), 0);
  } else {
    // The stub's child: it goes to init (or our subreaper) when the stub is killed, before any
    // of its state (a parent-death signal, say) is restored.
    args.writeBigUInt64LE(BigInt(SIG.CHLD), 32);
  }
  args.writeBigUInt64LE(tidArray, 64); // set_tid
  args.writeBigUInt64LE(1n, 72); // set_tid_size
  const tid = Buffer.alloc(4);
  tid.writeInt32LE(pid, 0);
  vmWrite(stub.tracee.tid, argsAddr, args);
  vmWrite(stub.tracee.tid, tidArray, tid);

  const t = stub.tracee;
  const regs = stub.remote.originalRegs;
  regs.set('ax', 435);
  regs.set('orig_ax', -1n);
  regs.set('di', argsAddr);
  regs.set('si', 88);
  regs.set('ip', stub.trampoline);
  t.setRegs(regs);
  ptrace(PTRACE.SINGLESTEP, t.tid, 0, 0);
  let st = t.wait();
  if (st.stopped && (st.event === PTRACE_EVENT.FORK || st.event === PTRACE_EVENT.CLONE)) {
    const child = Number(getEventMsg(t.tid));
    ptrace(PTRACE.SINGLESTEP, t.tid, 0, 0);
    st = t.wait();
    const ret = t.regs().signed('ax');
    if (ret !== BigInt(pid)) throw new TraceeError(t.tid, `clone3 returned ${ret}, wanted ${pid}`);
    return Tracee.adopt(child, child);
  }
  const ret = t.regs().signed('ax');
  if (ret === -17n) throw new UserError(`PID ${pid} is already in use`);
  throw new TraceeError(t.tid, `clone3 with set_tid ${pid} failed (${ret}, stop 0x${st.raw.toString(16)})`);
}

export function killStub(stub: Pick<Stub, 'tracee'>): void {
  const pid = stub.tracee.tid;
  try {
    process.kill(pid, 'SIGKILL');
  } catch {
    /* gone */
  }
  // Reap it: it is our child. Its ptrace stops end with the kill.
  for (let i = 0; i < 100 && pidExists(pid); i++) {
    const st = wait4(pid);
    if (st && (st.exited || st.signaled)) break;
  }
}
