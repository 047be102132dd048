// Resource limits. Read by the task itself (prlimit64 on another process needs a matching uid or
// CAP_SYS_RESOURCE, which a root dumper may lack: a non-root target's limits would be out of
// reach); set from outside with prlimit64 while the restored task is still root.
import { prlimit, RLIMIT_NLIMITS } from '../../sys/index.js';
import type { DumpTask } from '../context.js';

export interface RlimitData {
  cur: bigint;
  max: bigint;
}

export function dumpRlimits(t: DumpTask): RlimitData[] {
  t.scratch.reset();
  const buf = t.scratch.alloc(16 * RLIMIT_NLIMITS);
  for (let res = 0; res < RLIMIT_NLIMITS; res++) {
    t.remote.call('prlimit64', [0, res, 0, buf + BigInt(16 * res)], `rlimit ${res}`);
  }
  const raw = t.scratch.read(buf, 16 * RLIMIT_NLIMITS);
  const out: RlimitData[] = [];
  for (let res = 0; res < RLIMIT_NLIMITS; res++) out.push({ cur: raw.readBigUInt64LE(16 * res), max: raw.readBigUInt64LE(16 * res + 8) });
  return out;
}

export function restoreRlimits(pid: number, limits: RlimitData[]): void {
  limits.forEach((l, res) => prlimit(pid, res, l));
}
