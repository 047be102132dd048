import { readlinkSync } from 'node:fs';

// Paths of a tree in a mount namespace of its own mean nothing in cryo's: they are reached
// through /proc/PID/root of a task of the tree, which resolves them in that namespace. During
// a restore of such a tree the engine sets that task here once its namespace is built, and the
// restorer's own opens of image paths (regular files, their checks) go through it.
let rootTask: number | null = null;

/** `path` of the namespace of task `pid`, as cryo reaches it. */
export const treePath = (pid: number, path: string): string => `/proc/${pid}/root${path.startsWith('/') ? path : `/${path}`}`;

export function setTreeRoot(pid: number | null): void {
  rootTask = pid;
}

/** An absolute path of the images as the restorer opens it (unchanged outside a mount namespace). */
export function hostPath(path: string): string {
  return rootTask !== null && path.startsWith('/') ? treePath(rootTask, path) : path;
}

/** A restore of a tree in a mount namespace of its own is under way (its root task known). */
export const inTreeMountNs = (): boolean => rootTask !== null;

const nsOf = (pid: number | 'self') => readlinkSync(`/proc/${pid}/ns/mnt`);
/**
 * cryo's own, read once: it cannot change (setns into a mount namespace is refused to a process
 * of several threads, which Node always is), and it was read for every fd and mapping of a dump.
 */
let ours: string | null = null;

/** Task `pid` has a mount namespace of its own (not cryo's). */
export function ownMountNs(pid: number): boolean {
  return nsOf(pid) !== (ours ??= nsOf('self'));
}
