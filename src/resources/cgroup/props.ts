// The controller settings --manage-cgroups saves and sets again, per hierarchy, in the order they
// must be written (a period before its quota, cpus and mems before anything runs there, a limit
// before the limit that must stay above it). Only files that exist are read; what a controller
// reports (usage, stats, events) is never saved. v2 files are named by the controllers the
// hierarchy offers; v1 files by the controllers the mount carries.
import { readdirSync } from 'node:fs';

const V2_FILES = [
  'cgroup.max.depth', 'cgroup.max.descendants',
  'cpuset.cpus', 'cpuset.mems', 'cpuset.cpus.partition',
  'cpu.weight', 'cpu.max', 'cpu.max.burst', 'cpu.idle', 'cpu.uclamp.min', 'cpu.uclamp.max',
  'memory.min', 'memory.low', 'memory.high', 'memory.max', 'memory.swap.high', 'memory.swap.max', 'memory.zswap.max', 'memory.oom.group',
  'io.weight', 'pids.max',
] as const;

const V1_FILES: Record<string, readonly string[]> = {
  cpu: ['cpu.shares', 'cpu.cfs_period_us', 'cpu.cfs_quota_us'],
  cpuset: ['cpuset.cpus', 'cpuset.mems', 'cpuset.cpu_exclusive', 'cpuset.mem_exclusive', 'cpuset.mem_hardwall', 'cpuset.memory_migrate', 'cpuset.sched_load_balance'],
  memory: ['memory.limit_in_bytes', 'memory.memsw.limit_in_bytes', 'memory.soft_limit_in_bytes', 'memory.swappiness', 'memory.oom_control'],
  pids: ['pids.max'],
  blkio: ['blkio.weight'],
};

/** The property files of cgroup `dir` in hierarchy `name` ('' for v2), in write order. */
export function propertyFiles(name: string, dir: string): string[] {
  if (name === '') {
    // hugetlb.<size>.max: one per huge page size the machine has.
    const hugetlb = readdirSync(dir).filter((f) => /^hugetlb\.[^.]+\.max$/.test(f)).sort();
    return ['cgroup.subtree_control', ...V2_FILES, ...hugetlb];
  }
  return [...name.split(',').flatMap((c) => V1_FILES[c] ?? []), 'notify_on_release'];
}

/**
 * The value to write back for what reading `file` gave: cgroup.subtree_control lists
 * controllers ("cpu memory") and is written as "+cpu +memory"; memory.oom_control reports
 * several keys, of which only oom_kill_disable can be set.
 */
export function writableValue(file: string, value: string): string | null {
  if (file === 'cgroup.subtree_control') return value.split(/\s+/).filter(Boolean).map((c) => `+${c}`).join(' ') || null;
  if (file === 'memory.oom_control') return /^oom_kill_disable (\d)/m.exec(value)?.[1] ?? null;
  return value;
}
