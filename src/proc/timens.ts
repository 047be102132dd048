// /proc/PID/timens_offsets: the offsets of a task's time namespace from the host's clocks, one
// line per clock: "<clock> <seconds> <nanoseconds>", the clock by name (monotonic, boottime) or
// by its id (1, 7) on older kernels; the nanoseconds are in [0, 1e9) even for a negative offset.

export interface TimensOffsets {
  /** CLOCK_MONOTONIC's offset, ns (signed). */
  monotonic: bigint;
  /** CLOCK_BOOTTIME's offset, ns (signed). */
  boottime: bigint;
}

const NS = 1_000_000_000n;
const CLOCKS: Record<string, keyof TimensOffsets> = { monotonic: 'monotonic', '1': 'monotonic', boottime: 'boottime', '7': 'boottime' };

export function parseTimensOffsets(text: string): TimensOffsets {
  const out: Partial<TimensOffsets> = {};
  for (const line of text.split('\n').filter((l) => l.trim())) {
    const m = /^\s*(\S+)\s+(-?\d+)\s+(\d+)\s*$/.exec(line);
    const clock = m ? CLOCKS[m[1]!] : undefined;
    if (!m || !clock) throw new Error(`timens_offsets line not understood: ${line}`);
    out[clock] = BigInt(m[2]!) * NS + BigInt(m[3]!);
  }
  if (out.monotonic === undefined || out.boottime === undefined) throw new Error(`timens_offsets without both clocks: ${text.trim()}`);
  return out as TimensOffsets;
}

/** The text that sets `o` through timens_offsets (clock ids, nanoseconds normalised to [0, 1e9)). */
export function formatTimensOffsets(o: TimensOffsets): string {
  const line = (id: number, ns: bigint) => {
    const sec = ns >= 0n ? ns / NS : -((-ns + NS - 1n) / NS);
    return `${id} ${sec} ${ns - sec * NS}\n`;
  };
  return line(1, o.monotonic) + line(7, o.boottime);
}
