// Small helpers the benchmarks share: medians and flags.

export const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] ?? NaN;

/** `--name N` from the command line, or the default. */
export function flagNumber(name: string, dflt: number, argv = process.argv): number {
  const i = argv.indexOf(name);
  if (i < 0) return dflt;
  const n = Number(argv[i + 1]);
  if (!Number.isFinite(n) || n < 0) throw new Error(`${name} takes a number, not '${argv[i + 1]}'`);
  return n;
}

/** `--name a,b,c` as numbers, or the default. */
export function flagList(name: string, dflt: number[], argv = process.argv): number[] {
  const i = argv.indexOf(name);
  if (i < 0) return dflt;
  const xs = String(argv[i + 1] ?? '').split(',').filter((s) => s !== '').map(Number);
  if (!xs.length || xs.some((n) => !Number.isFinite(n) || n < 0)) throw new Error(`${name} takes numbers separated by commas, not '${argv[i + 1]}'`);
  return xs;
}
