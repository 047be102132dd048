// Option values and defaults the command line shows in --help. They live here, below everything,
// so that `cryo --help` and `--version` load this and commander, not the engine: the modules
// that use them (files/scan.ts, restore/verify.ts, task/cpu.ts) import them from here.

/** CRIU's default ghost limit: 1 MiB. */
export const DEFAULT_GHOST_LIMIT = 1 << 20;

/** `restore --verify`: a difference fails the restore (on), is printed (warn), or nothing is read (off). */
export const VERIFY_MODES = ['on', 'warn', 'off'] as const;
export type VerifyMode = (typeof VERIFY_MODES)[number];

/** `--cpu-cap` words (CRIU's), and cryo's default. */
export const CPU_CAPS = ['fpu', 'ins', 'cpu', 'all', 'none'] as const;
export const DEFAULT_CPU_CAP = 'fpu,ins';

/** `--manage-cgroups` modes (CRIU's): settings into the cgroups a restore makes, into all, or no cgroup touched. */
export const CGROUP_MODES = ['soft', 'full', 'ignore'] as const;
export type CgroupMode = (typeof CGROUP_MODES)[number];
