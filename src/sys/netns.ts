// Network namespaces from cryo's main thread. A socket, and a process forked, take the network
// namespace of the thread that creates them; so the few calls that must make something inside a
// tree's namespace (its rtnetlink socket, its sockets, the restore's stub, `nft`) run in
// withNetns, which moves only the calling thread in and always back out. Everything else of cryo
// (Node's other threads too) stays in the host's namespace. Net is the one kind this works for:
// setns into a mount or user namespace is refused to a multithreaded process.
import { openSync, closeSync } from 'node:fs';
import { sys } from './libc.js';
import { withThreadNamespace } from './nsfs.js';

const CLONE_NEWNET = 0x40000000;

/** An fd of the calling thread's own network namespace (not the process's: a thread may differ). */
const ownNetns = (): number => openSync('/proc/thread-self/ns/net', 'r');

/** An fd on the network namespace of `pid` (its main thread). */
export const openNetns = (pid: number): number => openSync(`/proc/${pid}/ns/net`, 'r');

/** Runs `fn` with the calling thread in namespace `fd`, then puts the thread back. */
export function withNetns<T>(fd: number, fn: () => T): T {
  return withThreadNamespace('net', fd, fn);
}

/** A new, empty network namespace (only a down loopback in it), held by the fd returned. */
export function newNetns(): number {
  const home = ownNetns();
  try {
    sys('unshare', [CLONE_NEWNET], 'a new network namespace');
    try {
      return ownNetns();
    } finally {
      sys('setns', [home, CLONE_NEWNET], 'back to our own network namespace');
    }
  } finally {
    closeSync(home);
  }
}
