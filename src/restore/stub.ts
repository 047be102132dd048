// The stub: a throwaway process of ours, seized (ptrace/seized.ts), in which the restorer injects
// the clone3 that creates a task with its original PID.
import { readFileSync } from 'node:fs';
import { PROT, MAP, PAGE_SIZE, CLONE, SIG, vmWrite } from '../sys/index.js';
import { Tracee, Remote, injectClone3, CloneError, spawnSeized, killSeized } from '../ptrace/index.js';
import { parseMaps } from '../proc/index.js';
import { UserError, hex } from '../util/errors.js';

/** The trampoline's own part: its code page (syscall; int3, then batches), then scratch pages. */
export const TRAMPOLINE_BASE = 16 * PAGE_SIZE;
/**
 * Past it, a slot per thread of a process (up to THREAD_SLOTS): a code page and scratch pages of
 * the thread's own, so that threads run their batches side by side (restore/thread.ts). Address
 * space only: a page is touched when a thread uses it, and all goes with the trampoline.
 */
export const THREAD_SLOT_SIZE = 4 * PAGE_SIZE;
export const THREAD_SLOTS = 128;
export const TRAMPOLINE_SIZE = TRAMPOLINE_BASE + THREAD_SLOTS * THREAD_SLOT_SIZE;
/** syscall; int3 — the int3 only guards against running past the syscall. */
const TRAMPOLINE_CODE = Buffer.from([0x0f, 0x05, 0xcc]);

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
  const { tracee, remote } = spawnSeized(avoidPid);
  const pid = tracee.tid;
  try {
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
export function forkWithPid(stub: Stub, pid: number, asOurChild: boolean, ns: { flags: number; setTid: number[]; pidfdAt?: number } = { flags: 0, setTid: [pid] }): Tracee {
  stub.remote.syscallAt = stub.trampoline;
  if (ns.pidfdAt !== undefined) {
    // A root in a new PID namespace cannot name cryo: it inherits a pidfd of cryo from the stub.
    const fd = stub.remote.call('pidfd_open', [process.pid, 0], 'pidfd of cryo in the stub');
    stub.remote.call('dup3', [fd, ns.pidfdAt, 0], `pidfd of cryo at fd ${ns.pidfdAt}`);
    stub.remote.call('close', [fd]);
  }
  try {
    return injectClone3(stub.remote, stub.trampoline + BigInt(PAGE_SIZE), {
      // exit_signal 0 with CLONE_PARENT: the child inherits the stub's (SIGCHLD); the kernel
      // refuses any other value. Without it the task is the stub's child, orphaned when the stub
      // goes (before any of its state, a parent-death signal say, is restored).
      // ns: the root's new PID, UTS and IPC namespaces (resources/ns/restore.ts), if it had any.
      flags: BigInt((asOurChild ? CLONE.PARENT : 0) | ns.flags),
      exitSignal: asOurChild ? 0 : SIG.CHLD,
      setTid: ns.setTid,
      returns: pid, // the stub is in cryo's PID namespace, whichever its children go to
    });
  } catch (e) {
    if (e instanceof CloneError && e.errno === 17) throw new UserError(e.message);
    throw e;
  }
}

export function killStub(stub: Pick<Stub, 'tracee'>): void {
  killSeized(stub.tracee);
}
