// The python3 process trees the benchmarks checkpoint, and finding them again by session.
import { readFileSync, readdirSync } from 'node:fs';

/** python3 that forks `procs - 1` children (or starts `threads` threads), all sleeping. */
export function script(procs: number, threads: number): string {
  return [
    'import os, threading, time',
    'os.closerange(3, 65536)',
    `for _ in range(${procs - 1}):`,
    '    if os.fork() == 0:',
    '        time.sleep(1e6); os._exit(0)',
    `for _ in range(${threads}): threading.Thread(target=time.sleep, args=(1e6,), daemon=True).start()`,
    'print("ready", flush=True)',
    'time.sleep(1e6)',
  ].join('\n');
}

export function sessionPids(sid: number): number[] {
  const out: number[] = [];
  for (const n of readdirSync('/proc')) {
    if (!/^\d+$/.test(n)) continue;
    try {
      const s = readFileSync(`/proc/${n}/stat`, 'utf8');
      if (Number(s.slice(s.lastIndexOf(')') + 2).split(' ')[3]) === sid) out.push(Number(n));
    } catch {
      /* gone */
    }
  }
  return out;
}
