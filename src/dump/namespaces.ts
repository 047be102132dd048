// Namespaces: cryo restores tasks into its own namespaces, so a task living in other ones (a
// container) cannot be checkpointed yet: its paths, PIDs and network would not mean the same.
import { readlinkSync } from 'node:fs';
import type { Blocker } from '../util/blocker.js';

export const NS_KINDS = ['pid', 'mnt', 'net', 'ipc', 'uts', 'user', 'cgroup', 'time'] as const;

export function nsLink(pid: number | 'self', kind: string): string | null {
  try {
    return readlinkSync(`/proc/${pid}/ns/${kind}`);
  } catch {
    return null;
  }
}

/** Each namespace of the task, and whether it is cryo's own. */
export function namespacesOf(pid: number): { kind: string; link: string; same: boolean }[] {
  const out: { kind: string; link: string; same: boolean }[] = [];
  for (const kind of NS_KINDS) {
    const link = nsLink(pid, kind);
    if (link) out.push({ kind, link, same: link === nsLink('self', kind) });
  }
  return out;
}

export function namespaceBlockers(pid: number): Blocker[] {
  return namespacesOf(pid)
    .filter((n) => !n.same)
    .map((n) => ({ pid, kind: 'namespace', reason: `in its own ${n.kind} namespace (${n.link}) — namespaces are not supported yet` }));
}
