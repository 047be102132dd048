// The namespace kinds as the dump and the restore use them: what the tree's root has of its
// own (judge.ts), its PID levels (pid.ts), its UTS and IPC namespaces' contents (state.ts,
// through the ns helper, and images.ts) and its time namespace's offsets (time.ts).
import { ownNamespaces } from './judge.js';
import { dumpNsState, type NsHelperKind, type NsState } from './state.js';
import { readNetns, type NetnsState } from '../netns/index.js';
import { dumpTimens, type TimensState } from './time.js';
import { cgnsRoots } from './cgroup.js';
import { dumpUserns, type UsernsState } from './user.js';

export { judgeNamespaces, namespaceBlockers, ownNamespaces, nsLink, NS_KINDS } from './judge.js';
export { nsPidsBelow, setTidArray, threadNsPid, localPidMap } from './pid.js';
export { writeNsImages, readNsImages } from './images.js';
export { restoreNsState, removeNsSegments, type NsState, type NsHelperKind } from './state.js';
export { writeTimensImage, timensEntry, hostClocks, bootId, type TimensState } from './time.js';
export { withCgnsPrefix } from './cgroup.js';
export { dumpLastPid, restoreLastPids } from './last-pid.js';
export { writeUsernsImage, credsInside, type UsernsState } from './user.js';

export interface TreeNamespaces {
  /** The kinds the root has of its own (pid, uts, ipc). */
  own: Set<string>;
  state: NsState;
  /** The root's own network namespace (resources/netns), read from cryo through setns. */
  net?: NetnsState;
  /** The root's own time namespace: its offsets and clocks (time.ts). */
  time?: TimensState;
  /** The root's own cgroup namespace: its root in each hierarchy (cgroup.ts). */
  cgns?: Map<string, string>;
  /** The root's own user namespace: its maps (user.ts). */
  user?: UsernsState;
}

/** Reads the root's own UTS, IPC, network, time, cgroup and user namespaces (the tree frozen: nothing in them changes). */
export function dumpTreeNamespaces(root: number): TreeNamespaces {
  const own = ownNamespaces(root);
  const kinds = (['uts', 'ipc'] as NsHelperKind[]).filter((k) => own.has(k));
  return {
    own, state: dumpNsState(root, kinds),
    ...(own.has('net') ? { net: readNetns(root) } : {}),
    ...(own.has('time') ? { time: dumpTimens(root) } : {}),
    ...(own.has('cgroup') ? { cgns: cgnsRoots(root) } : {}),
    ...(own.has('user') ? { user: dumpUserns(root) } : {}),
  };
}
