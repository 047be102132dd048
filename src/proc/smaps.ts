// /proc/PID/smaps: cryo only needs each VMA's VmFlags (two-letter codes, see proc(5)).

/** Start address -> VmFlags codes of that VMA. */
export function parseSmapsVmFlags(text: string): Map<bigint, Set<string>> {
  const out = new Map<bigint, Set<string>>();
  let cur: bigint | null = null;
  for (const line of text.split('\n')) {
    const head = /^([0-9a-f]+)-[0-9a-f]+ /.exec(line);
    if (head) {
      cur = BigInt('0x' + head[1]);
      continue;
    }
    if (cur !== null && line.startsWith('VmFlags:')) {
      out.set(cur, new Set(line.slice(8).trim().split(/\s+/)));
    }
  }
  return out;
}
