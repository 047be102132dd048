// The kind the verification gives an fd (the key `fd N (KIND)` of a snapshot), from its /proc
// link on the /proc side and from its image on the other; the registered kinds
// (resources/files/registry.ts) go by their own names.
import { FD_KINDS, registeredKindOf, type RegisteredKindName } from '../files/registry.js';
import { pathKindName } from '../files/reg.js';
import type { FdAt } from '../files/fd-kind.js';

/** What the verification calls an fd's kind (the registered kinds go by their own names). */
export type ObservedKind = 'file' | 'dir' | 'device' | 'fifo' | 'pipe' | 'socket' | 'memfd' | 'anon' | RegisteredKindName;

/** Kinds whose access mode is the kernel's, not the opener's (see fdFlagSet). */
export const OBJECT_KINDS = new Set<ObservedKind>(['socket', 'anon', ...FD_KINDS.filter((k) => k.object).map((k) => k.name)]);

const ANON: Record<string, ObservedKind> = {
};

/** The kind of an fd from its /proc/PID/fd link and the st_mode of what it opens. */
export function fdKindOf(link: string, mode: number, at?: FdAt): ObservedKind {
  if (link.startsWith('socket:[')) return 'socket';
  if (link.startsWith('pipe:[')) return 'pipe';
  const registered = registeredKindOf(link, mode, at);
  if (registered) return (registered.nameOf?.(mode) ?? registered.name) as ObservedKind;
  if (link.startsWith('anon_inode:')) return ANON[link] ?? 'anon';
  return pathKindName(mode);
}

