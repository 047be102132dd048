// A seized throwaway process of ours: a `sleep`, stopped, with a Remote on its vdso's syscall,
// in which cryo runs syscalls that must not be its own (the restore's stub, which clones the
// tree's tasks; the user namespace's maker; a chroot for a bind, resources/files/unix-bind.ts).
// Spawned with posix_spawn (not Node's child_process) so libuv never reaps its ptrace stops.
import { existsSync } from 'node:fs';
import { posixSpawn, PTRACE_O, wait4 } from '../sys/index.js';
import { Tracee } from './tracee.js';
import { Remote } from './remote.js';
import { findSyscallInVdso } from './syscall-site.js';
import { UserError } from '../util/errors.js';

function sleepBinary(): string {
  for (const p of ['/usr/bin/sleep', '/bin/sleep']) if (existsSync(p)) return p;
  throw new UserError('no sleep binary (/usr/bin/sleep) to run as a helper process of cryo');
}

/** A seized `sleep` of ours (not `avoidPid`), stopped, with a Remote on its vdso's syscall. */
export function spawnSeized(avoidPid: number): { tracee: Tracee; remote: Remote } {
  let pid = posixSpawn(sleepBinary(), ['sleep', '1000000'], []);
  if (pid === avoidPid) {
    // It took the very PID we want: drop it and take another.
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
    return { tracee, remote: new Remote(tracee, findSyscallInVdso(pid)) };
  } catch (e) {
    killSeized(tracee);
    throw e;
  }
}

/** Runs `fn` in a seized process of ours, killed and reaped after. */
export function withSeized<T>(avoidPid: number, fn: (remote: Remote, pid: number) => T): T {
  const { tracee, remote } = spawnSeized(avoidPid);
  try {
    return fn(remote, tracee.tid);
  } finally {
    killSeized(tracee);
  }
}

/** Kills and reaps a seized process of ours (our child as well as our tracee: one wait does). */
export function killSeized(tracee: Tracee): void {
  tracee.kill();
  tracee.waitGone();
}
