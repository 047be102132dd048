// /proc/PID/auxv: pairs of u64 (type, value) ending with AT_NULL.

export function parseAuxv(buf: Buffer): bigint[] {
  const out: bigint[] = [];
  for (let off = 0; off + 16 <= buf.length; off += 16) {
    const type = buf.readBigUInt64LE(off);
    const val = buf.readBigUInt64LE(off + 8);
    out.push(type, val);
    if (type === 0n) break;
  }
  return out;
}

export const AT_SYSINFO_EHDR = 33n;
