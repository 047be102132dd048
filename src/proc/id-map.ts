// /proc/PID/uid_map and gid_map: "first lower_first count" per line, as the reader's user
// namespace sees the lower side (cryo reads from the parent namespace: lower ids are the host's).
export interface IdExtent {
  /** First id inside the namespace. */
  first: number;
  /** The id it stands for in the parent namespace. */
  lowerFirst: number;
  count: number;
}

export function parseIdMap(text: string): IdExtent[] {
  return text.split('\n').map((l) => l.trim()).filter(Boolean).map((l) => {
    const f = l.split(/\s+/).map(Number);
    if (f.length !== 3 || f.some((n) => !Number.isInteger(n) || n < 0)) throw new Error(`bad id map line "${l}"`);
    return { first: f[0]!, lowerFirst: f[1]!, count: f[2]! };
  });
}

/** The map as the kernel takes it in a write to uid_map / gid_map. */
export function formatIdMap(map: readonly IdExtent[]): string {
  return map.map((e) => `${e.first} ${e.lowerFirst} ${e.count}\n`).join('');
}

/** Inside id of parent-namespace id `lower`, or null when the map does not cover it. */
export function idInside(map: readonly IdExtent[], lower: number): number | null {
  for (const e of map) if (lower >= e.lowerFirst && lower - e.lowerFirst < e.count) return e.first + (lower - e.lowerFirst);
  return null;
}

/** Parent-namespace id of inside id `id`, or null when the map does not cover it. */
export function idOutside(map: readonly IdExtent[], id: number): number | null {
  for (const e of map) if (id >= e.first && id - e.first < e.count) return e.lowerFirst + (id - e.first);
  return null;
}
