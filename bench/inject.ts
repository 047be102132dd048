// The cost of one injected system call: the single-step Remote (the restorer's) against the
// crash-safe SafeRemote the dump uses (one marker stop per call, see src/ptrace/safe-remote.ts),
// interleaved in rounds on the same frozen process so that machine load affects both alike.
// Prints figures; asserts nothing about time.   node dist/bench/inject.js [calls-per-round]
import { spawn } from 'node:child_process';
import { Tracee, Remote, SafeRemote, findSyscallInVdso } from '../src/ptrace/index.js';

const perRound = Number(process.argv[2] ?? 500);
const child = spawn('python3', ['-c', 'import time\nwhile True: time.sleep(1)'], { stdio: 'ignore' });
await new Promise((r) => setTimeout(r, 300));
const pid = child.pid!;
const t = Tracee.seize(pid, pid, 0);

function timeCalls(r: Remote): number {
  const t0 = performance.now();
  for (let i = 0; i < perRound; i++) r.call('getpid');
  return ((performance.now() - t0) * 1000) / perRound;
}

const step: number[] = [];
const safe: number[] = [];
const open: number[] = [];
try {
  for (let round = 0; round < 6; round++) {
    const legacy = new Remote(t, findSyscallInVdso(pid));
    step.push(timeCalls(legacy));
    legacy.restore();
    const t0 = performance.now();
    const s = SafeRemote.open(t, 1);
    s.restore();
    open.push(performance.now() - t0);
    const s2 = SafeRemote.open(t, 1);
    safe.push(timeCalls(s2));
    s2.restore();
  }
} finally {
  t.release();
  child.kill('SIGKILL');
}
const median = (a: number[]) => [...a].sort((x, y) => x - y)[Math.floor(a.length / 2)]!;
console.log(`injected getpid: single-step ${median(step).toFixed(1)} µs, crash-safe ${median(safe).toFixed(1)} µs per call (median of 6 rounds of ${perRound})`);
console.log(`crash-safe area mmap + munmap (gadget path, 4 stops): ${median(open).toFixed(2)} ms per task`);
