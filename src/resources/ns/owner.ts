// After a restore, before anything runs: every namespace of every task is owned by the user
// namespace the images say (NS_GET_USERNS). A namespace under the wrong owner gives root inside
// rights it did not have (or takes some away) while everything else looks the same.
//
// The dump keeps only namespaces owned by the tree's user namespace (the root's own kinds, and
// nested PID namespaces: judge.ts, user.ts) or cryo's own ones, shared with cryo. So a namespace
// whose id is the dumper's (inventory root_ids) is cryo's and owned as cryo's is, and any other
// is owned by the tree's user namespace: the root's own one when it had one, else cryo's.
import { nsInode, nsOwnerInode } from '../../sys/index.js';
import type { Difference } from '../observe/snapshot.js';

const KINDS = ['pid', 'net', 'ipc', 'uts', 'mnt', 'cgroup', 'time'] as const;
type Kind = (typeof KINDS)[number] | 'user';
type Ids = Partial<Record<`${Kind}NsId`, number>>;

/** Each task's namespaces whose owner is not the one the images say. `own`: the root's own kinds. */
export function ownerDifferences(tasks: readonly { pid: number; ids: Ids }[], own: ReadonlySet<string>, dumper: Ids | undefined): Difference[] {
  const root = tasks[0];
  if (!dumper || !root) return [];
  const cryoUser = nsInode('/proc/self/ns/user');
  const treeUser = own.has('user') ? nsInode(`/proc/${root.pid}/ns/user`) : cryoUser;
  const name = (ino: number) => (ino === cryoUser ? `cryo's user:[${ino}]` : ino === treeUser ? `the tree's user:[${ino}]` : `user:[${ino}]`);
  // By namespace inode: a tree's tasks share most of theirs.
  const owners = new Map<number, number>();
  const ownerOf = (path: string) => {
    const ino = nsInode(path);
    if (!owners.has(ino)) owners.set(ino, nsOwnerInode(path));
    return owners.get(ino)!;
  };
  const out: Difference[] = [];
  for (const t of tasks) {
    const user = t.ids.userNsId;
    if (user) {
      const want = user === dumper.userNsId ? cryoUser : treeUser;
      const got = nsInode(`/proc/${t.pid}/ns/user`);
      if (got !== want || (t === root && own.has('user') && got === cryoUser)) out.push({ pid: t.pid, what: 'ns user', expected: own.has('user') && want === treeUser ? "the tree's own user namespace" : name(want), got: name(got) });
    }
    for (const kind of KINDS) {
      const mine = t.ids[`${kind}NsId`];
      if (!mine) continue; // an older image without the kind
      const want = mine === dumper[`${kind}NsId`] ? ownerOf(`/proc/self/ns/${kind}`) : treeUser;
      const got = ownerOf(`/proc/${t.pid}/ns/${kind}`);
      if (got !== want) out.push({ pid: t.pid, what: `ns ${kind} owner`, expected: name(want), got: name(got) });
    }
  }
  return out;
}
