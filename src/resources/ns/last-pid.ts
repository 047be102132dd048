// A PID namespace's last PID (/proc/sys/kernel/ns_last_pid): a fork in the namespace takes the
// first free PID after it. clone3's set_tid leaves it where it is, so without it a restored
// container's next fork took the lowest free PID, where the dumped one would have taken the next.
//
// The file answers for the PID namespace of the task that reads or writes it, so both are done
// by a /bin/sh forked into the namespace (cryo's main thread joins it for its children only:
// sys/nsfs.ts withPidForChildren). At dump the shell's own PID is the one the tree's next fork
// would have taken; the shell writes that minus one back before it exits, so the tree, frozen
// meanwhile, still gets it. At restore, once every task of the namespace exists and before any
// runs, it writes the saved value.
import { spawnSync } from 'node:child_process';
import { withPidForChildren } from '../../sys/index.js';
import { UserError } from '../../util/errors.js';
import { pstree_entrySchema, type pstree_entry } from '../../image/gen/pstree_pb.js';
import { hasField } from '../../image/presence.js';

const FILE = '/proc/sys/kernel/ns_last_pid';

function shell(pid: number, script: string, what: string): string {
  const r = withPidForChildren(pid, () => spawnSync('/bin/sh', ['-c', script], { encoding: 'utf8', timeout: 10_000 }));
  if (r.error) throw new UserError(`${what}: /bin/sh: ${r.error.message}`);
  if (r.status !== 0) throw new UserError(`${what}: ${r.stderr.trim() || `exit ${r.status ?? r.signal}`}`);
  return r.stdout.trim();
}

/** The last PID of the PID namespace of task `pid` (the tree frozen), left as it was. */
export function dumpLastPid(pid: number): number {
  const got = Number(shell(pid, `echo $(($$ - 1)) > ${FILE} && echo $(($$ - 1))`, `the last PID of the PID namespace of pid ${pid}`));
  if (!Number.isInteger(got) || got < 0) throw new UserError(`the last PID of the PID namespace of pid ${pid}: read ${got}`);
  return got;
}

/** Sets the last PID of the PID namespace of task `pid` (every task of it made), checked. */
export function restoreLastPid(pid: number, last: number): void {
  // Nothing read back: the kernel's write refuses what it does not take (EPERM, EINVAL), and a
  // read would have to be forked (sh's `read` takes a byte at a time, which the file answers
  // once), which takes a PID after it.
  shell(pid, `echo ${last} > ${FILE}`, `the last PID ${last} of the PID namespace of pid ${pid}`);
}

/** Every PID namespace init's saved last PID back (`tasks`: the images' pstree entries, all made). */
export function restoreLastPids(tasks: readonly { pid: number; pstree: pstree_entry }[]): void {
  for (const t of tasks) if (hasField(pstree_entrySchema, t.pstree, 'cryoNsLastPid')) restoreLastPid(t.pid, t.pstree.cryoNsLastPid!);
}
