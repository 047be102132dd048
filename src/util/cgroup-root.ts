// restore --cgroup-root [CONTROLLER:]/PATH, as the option and the library take it (its meaning:
// resources/cgroup/root.ts).

export interface CgroupRootSpec {
  /** A controller of the hierarchy ('memory', 'name=systemd', 'unified' for v2); none: every other one. */
  controller?: string;
  path: string;
}

/** `[CONTROLLER:]/PATH`; null when it is not that (a relative path, a `..` component). */
export function parseCgroupRoot(text: string): CgroupRootSpec | null {
  const m = /^(?:([^/:][^:]*):)?(\/[^\0]*)$/.exec(text);
  if (!m || m[2]!.split('/').includes('..')) return null;
  const path = m[2]!.replace(/\/+$/, '') || '/';
  return m[1] ? { controller: m[1], path } : { path };
}
