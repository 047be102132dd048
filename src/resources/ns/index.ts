// The namespace kinds as the dump and the restore use them: what the tree's root has of its
// own (judge.ts), its PID levels (pid.ts), and its UTS and IPC namespaces' contents (state.ts,
// through the ns helper, and images.ts).
import { ownNamespaces } from './judge.js';
import { dumpNsState, type NsHelperKind, type NsState } from './state.js';
import { readNetns, type NetnsState } from '../netns/index.js';

export { judgeNamespaces, namespaceBlockers, ownNamespaces, nsLink, NS_KINDS } from './judge.js';
export { nsPidsBelow, setTidArray, threadNsPid, localPidMap } from './pid.js';
export { writeNsImages, readNsImages } from './images.js';
export { restoreNsState, removeNsSegments, type NsState, type NsHelperKind } from './state.js';

export interface TreeNamespaces {
  /** The kinds the root has of its own (pid, uts, ipc). */
  own: Set<string>;
  state: NsState;
  /** The root's own network namespace (resources/netns), read from cryo through setns. */
  net?: NetnsState;
}

/** Reads the root's own UTS, IPC and network namespaces (the tree frozen: nothing in them changes). */
export function dumpTreeNamespaces(root: number): TreeNamespaces {
  const own = ownNamespaces(root);
  const kinds = (['uts', 'ipc'] as NsHelperKind[]).filter((k) => own.has(k));
  return { own, state: dumpNsState(root, kinds), ...(own.has('net') ? { net: readNetns(root) } : {}) };
}
