// The tree's own user namespace at restore: made, with every namespace it owns, by a maker
// process of ours (resources/ns/user-restore.ts) before the network namespace, which is then
// configured in the maker's.
import { withSeized } from '../ptrace/index.js';
import { makerNamespaces } from '../resources/ns/restore.js';
import type { MadeUserns } from '../resources/ns/user-restore.js';
import type { RestoreSession } from './files.js';

/** Makes them when the root had a user namespace of its own (session.userns then says which). */
export function makeTreeUserns(session: RestoreSession): MadeUserns | null {
  const { ckpt, log } = session;
  const img = ckpt.tasks[0]!;
  const user = ckpt.namespaces.user;
  if (!user) return null;
  const made = log.step('user namespace', () => withSeized(img.pid, (m, pid) => makerNamespaces(m, pid, ckpt.namespaces, ckpt.cgroups.get(img.core.tc?.cgSet ?? 0))));
  for (const line of made.lines) log.info(line);
  session.userns = { id: img.ids.userNsId, fd: made.made.user, state: user };
  return made.made;
}

/** Where NetnsRestore finds the network namespace the maker made, if it made one. */
export const madeNetnsPath = (u: MadeUserns | null): string | undefined => (u?.net !== undefined ? `/proc/self/fd/${u.net}` : undefined);
