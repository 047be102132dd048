// Resource limits: read and set from outside with prlimit64.
import { prlimit, RLIMIT_NLIMITS } from '../../sys/index.js';

export interface RlimitData {
  cur: bigint;
  max: bigint;
}

export function dumpRlimits(pid: number): RlimitData[] {
  const out: RlimitData[] = [];
  for (let res = 0; res < RLIMIT_NLIMITS; res++) out.push(prlimit(pid, res));
  return out;
}

export function restoreRlimits(pid: number, limits: RlimitData[]): void {
  limits.forEach((l, res) => prlimit(pid, res, l));
}
