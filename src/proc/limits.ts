// /proc/PID/limits: one line per resource, in RLIMIT_* order: "Max open files  1024  4096  files".

export interface LimitLine {
  /** "Max open files", as the kernel names the resource. */
  name: string;
  /** Soft and hard limit; RLIM_INFINITY (2^64 - 1) for "unlimited". */
  cur: bigint;
  max: bigint;
}

export const RLIM_INFINITY = (1n << 64n) - 1n;

const value = (v: string): bigint => (v === 'unlimited' ? RLIM_INFINITY : BigInt(v));

/** The resources in file order, which is their RLIMIT_* number. */
export function parseLimits(text: string): LimitLine[] {
  const out: LimitLine[] = [];
  for (const line of text.split('\n').slice(1)) {
    // The name is padded to 26 columns and may hold spaces; the two limits follow.
    const m = /^(.+?)\s{2,}(unlimited|\d+)\s+(unlimited|\d+)/.exec(line);
    if (m) out.push({ name: m[1]!.trim(), cur: value(m[2]!), max: value(m[3]!) });
  }
  return out;
}
