// /proc/PID/status: "Key:\tvalue" lines, plus typed accessors for the ones cryo uses.

export type ProcStatus = Map<string, string>;

export function parseStatus(text: string): ProcStatus {
  const m = new Map<string, string>();
  for (const line of text.split('\n')) {
    const i = line.indexOf(':');
    if (i > 0) m.set(line.slice(0, i), line.slice(i + 1).trim());
  }
  return m;
}

function field(s: ProcStatus, key: string): string {
  const v = s.get(key);
  if (v === undefined) throw new Error(`/proc/PID/status has no ${key}`);
  return v;
}

/** The four ids of Uid:/Gid: lines: real, effective, saved, filesystem. */
export function statusIds(s: ProcStatus, key: 'Uid' | 'Gid'): [number, number, number, number] {
  const v = field(s, key).split(/\s+/).map(Number);
  return [v[0]!, v[1]!, v[2]!, v[3]!];
}

export function statusGroups(s: ProcStatus): number[] {
  const v = s.get('Groups') ?? '';
  return v ? v.split(/\s+/).map(Number) : [];
}

export function statusHex(s: ProcStatus, key: string): bigint {
  return BigInt('0x' + field(s, key));
}

export function statusNumber(s: ProcStatus, key: string): number {
  return Number(field(s, key).split(/\s+/)[0]);
}

export function statusUmask(s: ProcStatus): number {
  return parseInt(field(s, 'Umask'), 8);
}
