// /proc/PID/net/igmp and igmp6: the multicast groups joined on each interface of a network
// namespace, by any socket (the kernel keeps no per-socket list in /proc). Candidates for the
// per-socket question asked with MCAST_MSFILTER.

export interface JoinedGroup {
  ifindex: number;
  ifname: string;
  /** network order, 4 or 16 bytes */
  group: Buffer;
}

/**
 * `Idx\tDevice    : Count Querier ...` lines name an interface; the indented lines under one
 * are its groups, each printed as the host-order hex of the big-endian address (x86: reversed).
 */
export function parseIgmp(text: string): JoinedGroup[] {
  const out: JoinedGroup[] = [];
  let dev: { ifindex: number; ifname: string } | null = null;
  for (const line of text.split('\n')) {
    const d = /^(\d+)\s+(\S+?)\s*:/.exec(line);
    if (d) {
      dev = { ifindex: Number(d[1]), ifname: d[2]! };
      continue;
    }
    const g = /^\s+([0-9A-Fa-f]{8})\s/.exec(line);
    if (g && dev) out.push({ ...dev, group: Buffer.from(g[1]!, 'hex').reverse() });
  }
  return out;
}

/** `1    lo              ff020000000000000000000000000001     1 0000000C 0`: one group a line. */
export function parseIgmp6(text: string): JoinedGroup[] {
  const out: JoinedGroup[] = [];
  for (const line of text.split('\n')) {
    const m = /^\s*(\d+)\s+(\S+)\s+([0-9a-f]{32})\s/.exec(line);
    if (m) out.push({ ifindex: Number(m[1]), ifname: m[2]!, group: Buffer.from(m[3]!, 'hex') });
  }
  return out;
}
