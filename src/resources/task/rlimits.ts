// Resource limits (task_core_entry.rlimits), a task resource (resource.ts). Read by the task
// itself (prlimit64 on another process needs a matching uid or CAP_SYS_RESOURCE, which a root
// dumper may lack: a non-root target's limits would be out of reach); set from outside with
// prlimit64 while the restored task is still root, once its children are made.
import { readFileSync } from 'node:fs';
import { prlimit, RLIMIT_NLIMITS } from '../../sys/index.js';
import type { DumpTask, ReadQueue } from '../context.js';
import type { TaskResource, TaskImageFields } from './resource.js';

export interface RlimitData {
  cur: bigint;
  max: bigint;
}

/** The 16 limits, read with the task's other reads (`q`, not a stop each): once it ran. */
export function dumpRlimits(t: DumpTask, q: ReadQueue): () => RlimitData[] {
  const buf = t.scratch.alloc(16 * RLIMIT_NLIMITS);
  for (let res = 0; res < RLIMIT_NLIMITS; res++) q.add('prlimit64', [0, res, 0, buf + BigInt(16 * res)], { detail: `rlimit ${res}` });
  return () => {
    const raw = t.scratch.read(buf, 16 * RLIMIT_NLIMITS);
    const out: RlimitData[] = [];
    for (let res = 0; res < RLIMIT_NLIMITS; res++) out.push({ cur: raw.readBigUInt64LE(16 * res), max: raw.readBigUInt64LE(16 * res + 8) });
    return out;
  };
}

const RLIMIT_NAMES = ['CPU', 'FSIZE', 'DATA', 'STACK', 'CORE', 'RSS', 'NPROC', 'NOFILE', 'MEMLOCK', 'AS', 'LOCKS', 'SIGPENDING', 'MSGQUEUE', 'NICE', 'RTPRIO', 'RTTIME'];
const CAP_SYS_RESOURCE = 24;

/** Whether cryo holds CAP_SYS_RESOURCE (without it a hard limit cannot be raised). */
function haveSysResource(): boolean {
  const eff = /^CapEff:\s+([0-9a-f]+)/m.exec(readFileSync('/proc/self/status', 'utf8'))?.[1] ?? '0';
  return ((BigInt('0x' + eff) >> BigInt(CAP_SYS_RESOURCE)) & 1n) === 1n;
}

/**
 * A hard limit above cryo's own cannot be set without CAP_SYS_RESOURCE (prlimit64: EPERM). The
 * defaults of RLIMIT_NPROC and RLIMIT_SIGPENDING are computed from the machine's memory, so an
 * image from another machine often has slightly higher ones: such a limit is lowered to cryo's
 * own, with a warning naming it (the verify step then expects the lowered value).
 */
function clampHardLimits(img: TaskImageFields, warn: (text: string) => void): void {
  if (!img.tc.rlimits || haveSysResource()) return;
  img.tc.rlimits.rlimits.forEach((l, res) => {
    const own = prlimit(0, res);
    if (l.max <= own.max) return;
    warn(`pid ${img.pid}: RLIMIT_${RLIMIT_NAMES[res] ?? res} hard limit ${l.max} is above what cryo may set without CAP_SYS_RESOURCE: restored as ${own.max}`);
    l.max = own.max;
    if (l.cur > l.max) l.cur = l.max;
  });
}

export const rlimitsResource: TaskResource = {
  name: 'rlimits',
  stage: 'after-children',
  dump(t, q) {
    const limits = dumpRlimits(t, q);
    return () => ({ tc: { rlimits: { rlimits: limits() } } });
  },
  adapt: clampHardLimits,
  restore(r, img) {
    img.tc.rlimits?.rlimits.forEach((l, res) => prlimit(r.pid, res, { cur: l.cur, max: l.max }));
  },
};
