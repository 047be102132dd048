// Resource limits. Read by the task itself (prlimit64 on another process needs a matching uid or
// CAP_SYS_RESOURCE, which a root dumper may lack: a non-root target's limits would be out of
// reach); set from outside with prlimit64 while the restored task is still root.
import { prlimit, RLIMIT_NLIMITS } from '../../sys/index.js';
import { batchInDump, type DumpTask } from '../context.js';
import type { BatchCall } from '../../ptrace/index.js';

export interface RlimitData {
  cur: bigint;
  max: bigint;
}

export function dumpRlimits(t: DumpTask): RlimitData[] {
  t.scratch.reset();
  const buf = t.scratch.alloc(16 * RLIMIT_NLIMITS);
  const calls: BatchCall[] = [];
  for (let res = 0; res < RLIMIT_NLIMITS; res++) calls.push({ name: 'prlimit64', args: [0, res, 0, buf + BigInt(16 * res)], detail: `rlimit ${res}` });
  batchInDump(t, calls); // one stop, not 16
  const raw = t.scratch.read(buf, 16 * RLIMIT_NLIMITS);
  const out: RlimitData[] = [];
  for (let res = 0; res < RLIMIT_NLIMITS; res++) out.push({ cur: raw.readBigUInt64LE(16 * res), max: raw.readBigUInt64LE(16 * res + 8) });
  return out;
}

export function restoreRlimits(pid: number, limits: RlimitData[]): void {
  limits.forEach((l, res) => prlimit(pid, res, l));
}
