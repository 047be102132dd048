// What SIGKILLed targets leave in /dev/shm: Python multiprocessing's named semaphores (its
// resource tracker unlinks them at exit, which a kill skips) and PostgreSQL's dynamic shared
// memory segments. Entries made since this test file started, of those two shapes, that no live
// process has open or mapped are removed by cleanup(): a suite run no longer leaves dozens.
import * as fs from 'node:fs';

const SHM = '/dev/shm';
const LEFTOVER = /^(sem\.mp-|PostgreSQL\.)/;
const atStart = new Set(names());

function names(): string[] {
  try {
    return fs.readdirSync(SHM);
  } catch {
    return [];
  }
}

/** /dev/shm paths some live process has open or mapped (another test's may still be in use). */
function inUse(): Set<string> {
  const used = new Set<string>();
  for (const pid of fs.readdirSync('/proc').filter((p) => /^\d+$/.test(p))) {
    try {
      for (const line of fs.readFileSync(`/proc/${pid}/maps`, 'utf8').split('\n')) {
        const at = line.indexOf(`${SHM}/`);
        if (at >= 0) used.add(line.slice(at).replace(/ \(deleted\)$/, ''));
      }
      for (const fd of fs.readdirSync(`/proc/${pid}/fd`)) {
        const link = fs.readlinkSync(`/proc/${pid}/fd/${fd}`);
        if (link.startsWith(`${SHM}/`)) used.add(link);
      }
    } catch {
      /* gone, or not ours to read */
    }
  }
  return used;
}

export function removeShmLeftovers(): void {
  const fresh = names().filter((n) => LEFTOVER.test(n) && !atStart.has(n));
  if (!fresh.length) return;
  const used = inUse();
  for (const n of fresh) if (!used.has(`${SHM}/${n}`)) fs.rmSync(`${SHM}/${n}`, { force: true });
}
