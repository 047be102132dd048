// Restoring a tree root's own user namespace (user.ts has what is saved and what is refused).
//
// Every other namespace of the root must be owned by the new user namespace, so it must be made
// by a task inside it; and uid_map / gid_map can be written only once the namespace exists, from
// outside. Yet the restore needs cryo's privileges in the host's namespace for as long as it
// builds the tasks: clone3's set_tid for a child asks CAP_CHECKPOINT_RESTORE in the user
// namespace of every PID namespace it sets a PID in (the host's among them), and pidfd_getfd,
// which hands each fd cryo opens to its task, is refused (EPERM) to a task in a child user
// namespace asking for cryo's fds. So the namespaces are made by a maker and the tasks join the
// user namespace last:
//  1. the maker (a seized `sleep` of ours, moved into the cgroup namespace's roots) unshares
//     CLONE_NEWUSER (as the namespace's owner uid), cryo writes its setgroups, uid_map and
//     gid_map, and the maker, now holding every capability inside, unshares the mount, UTS,
//     IPC, network, cgroup and PID namespaces and a time namespace (offsets written from outside
//     before any task is in it); cryo keeps an fd of each and the maker is killed. The PID
//     namespace is only the maker's pid_for_children (no fork): owned by the user namespace, with
//     no init yet; its fd comes from the pidfd ioctl (sys/nsfs.ts), /proc hides it until an init;
//  2. the stub, still in the host's user namespace as root, setns()es into them: a PID namespace
//     it may enter, a child of its own with CAP_SYS_ADMIN over its owner, as its pid_for_children
//     (time_for_children likewise: its next child is the first task of both). It clones the root
//     with set_tid [1, host PID] and no CLONE_NEWPID: the first task made in the namespace with
//     PID 1 is its init (child_reaper). The root forks its children with set_tid, and every fd
//     is pulled in with pidfd_getfd, all with the host's privileges;
//  3. each task of the user namespace, once its children exist and its fds are in, takes its
//     supplementary groups (host gids: a namespace with setgroups denied refuses setgroups
//     inside) and joins the namespace with setns(CLONE_NEWUSER) (every capability inside, none
//     outside); its credentials are then set as the images keep them, as ids inside.
// A failure before the root exists leaves a PID namespace without a task, gone with cryo's fd;
// after, killing the init empties it. Not the same as before: a task's mm->user_ns is the host's
// (the stub's, at fork), where the dumped task's was the namespace (its exec was inside): it
// matters only to a non-dumpable task, which root inside could no longer ptrace.
import { openSync, closeSync, writeFileSync } from 'node:fs';
import { CLONE, O, pidForChildrenNsFd } from '../../sys/index.js';
import { formatIdMap } from '../../proc/index.js';
import type { Remote } from '../../ptrace/index.js';
import type { RestoreTask } from '../context.js';
import { hostFdInTask } from '../host-fd.js';
import { UserError } from '../../util/errors.js';
import { skip } from '../../util/skip.js';
import { idOutside } from '../../proc/index.js';
import { usernsText, type UsernsState } from './user.js';

/** The namespaces the maker made, held by cryo's fds. */
export interface MadeUserns {
  user: number;
  /** For the stub's setns, in order. */
  joins: { kind: string; fd: number; flag: number }[];
  /** The network namespace, configured by cryo (resources/netns) before the stub is made in it. */
  net?: number;
}

/**
 * Kinds unshared by the maker once inside (time is made by `makeTime`, whose offsets it writes;
 * pid only for its children: the stub's next child is the init).
 */
const UNSHARED = { mnt: CLONE.NEWNS, uts: CLONE.NEWUTS, ipc: CLONE.NEWIPC, net: CLONE.NEWNET, cgroup: CLONE.NEWCGROUP, pid: CLONE.NEWPID } as const;
/** What the stub joins, and from which of the maker's files: pid and time first, mnt last. */
const JOINS = [
  ['pid', 'pid_for_children', CLONE.NEWPID], ['time', 'time_for_children', CLONE.NEWTIME], ['uts', 'uts', CLONE.NEWUTS],
  ['ipc', 'ipc', CLONE.NEWIPC], ['cgroup', 'cgroup', CLONE.NEWCGROUP], ['mnt', 'mnt', CLONE.NEWNS],
] as const;

/**
 * Step 1 in the maker `m` (pid `pid`, already in the cgroup namespace's roots). `own`: the
 * root's own kinds; `makeTime`: unshares the time namespace in the maker and writes its offsets
 * (time.ts). The caller kills the maker afterwards; on failure every fd is closed.
 */
export function makeUserns(m: Remote, pid: number, s: UsernsState, own: ReadonlySet<string>, makeTime: (() => void) | null): MadeUserns {
  const fds: number[] = [];
  const open = (file: string) => {
    // A PID namespace without an init is not shown in /proc (sys/nsfs.ts).
    const fd = file === 'pid_for_children' ? pidForChildrenNsFd(pid) : openSync(`/proc/${pid}/ns/${file}`, 'r');
    fds.push(fd);
    return fd;
  };
  try {
    // The owner is the creator's euid: it holds every capability inside from outside.
    // Deliberately wrong for the tests (util/skip.ts): a UTS namespace owned by cryo's user namespace.
    const early = own.has('uts') && skip('userns-owner') ? CLONE.NEWUTS : 0;
    if (early) m.call('unshare', [early], 'a UTS namespace outside the new user namespace');
    if (s.ownerUid !== 0) m.call('setresuid', [s.ownerUid, s.ownerUid, s.ownerUid], `owner uid ${s.ownerUid} of the user namespace`);
    m.call('unshare', [CLONE.NEWUSER], 'a new user namespace');
    try {
      if (s.setgroupsDeny) writeFileSync(`/proc/${pid}/setgroups`, 'deny');
      writeFileSync(`/proc/${pid}/uid_map`, formatIdMap(s.uidMap));
      writeFileSync(`/proc/${pid}/gid_map`, formatIdMap(s.gidMap));
    } catch (e) {
      throw new UserError(`the user namespace (${usernsText(s)}): cannot write its maps: ${(e as Error).message}`);
    }
    const flags = Object.entries(UNSHARED).reduce((f, [kind, flag]) => (own.has(kind) ? f | flag : f), 0) & ~early;
    if (flags) m.call('unshare', [flags], 'the namespaces owned by the new user namespace');
    makeTime?.();
    const made: MadeUserns = {
      user: open('user'),
      joins: JOINS.filter(([kind]) => own.has(kind)).map(([kind, file, flag]) => ({ kind, fd: open(file), flag })),
      ...(own.has('net') ? { net: open('net') } : {}),
    };
    return made;
  } catch (e) {
    for (const fd of fds) closeSync(fd);
    throw e;
  }
}

export function closeMadeUserns(made: MadeUserns): void {
  for (const fd of [made.user, ...made.joins.map((j) => j.fd), ...(made.net !== undefined ? [made.net] : [])]) closeSync(fd);
}

/** Step 2: the stub (in the host's user namespace, with the host's privileges) joins them. */
export function joinMadeNamespaces(stub: Remote, made: MadeUserns): void {
  const pidfd = stub.call('pidfd_open', [process.pid, 0], 'pidfd of cryo in the stub');
  try {
    for (const j of made.joins) {
      const fd = stub.call('pidfd_getfd', [pidfd, j.fd, 0], `the ${j.kind} namespace in the stub`);
      try {
        stub.call('setns', [fd, j.flag], `stub into the tree's ${j.kind} namespace`);
      } finally {
        stub.call('close', [fd]);
      }
    }
  } finally {
    stub.call('close', [pidfd]);
  }
}

/**
 * Step 3, in task `r` (single-threaded: setns refuses more): its groups (inside ids in the
 * images, host gids here), then the namespace. Its credentials follow (creds.ts, groups left).
 */
export function enterUserns(r: RestoreTask, userFd: number, s: UsernsState, groups: readonly number[]): void {
  const host = groups.map((g) => {
    const h = idOutside(s.gidMap, g);
    if (h === null) throw new UserError(`pid ${r.pid}: group ${g} is not mapped in the tree's user namespace (${usernsText(s)})`);
    return h;
  });
  r.scratch.reset();
  const buf = Buffer.alloc(4 * Math.max(1, host.length));
  host.forEach((g, i) => buf.writeUInt32LE(g, i * 4));
  r.remote.call('setgroups', [host.length, r.scratch.put(buf)], `groups of pid ${r.pid}`);
  const fd = hostFdInTask(r, `/proc/${process.pid}/fd/${userFd}`, O.RDONLY | O.CLOEXEC, `the tree's user namespace for pid ${r.pid}`);
  try {
    r.remote.call('setns', [fd, CLONE.NEWUSER], `pid ${r.pid} into the tree's user namespace`);
  } finally {
    r.remote.call('close', [fd]);
  }
}
