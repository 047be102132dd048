// The fd kinds that implement the FdKind interface (fd-kind.ts). check, dump, the image reader,
// the restore and the verification only iterate this list: a new kind is one module and one line
// here. An fd is of the first kind that recognises it: the kind of files opened by a path (reg)
// takes what the kinds before it leave; the socket kinds after it take only sockets (links
// `socket:[N]`, told apart by their family), which it never takes. The hooks run in this order
// too: the unix kind's prepare() comes last, since the messages queued in its sockets carry
// files of every other kind (a deleted file made again, a memfd, an inet socket).
import type { AnyFdKind, FdAt, FileEntryField } from './fd-kind.js';
import { eventfdKind } from './eventfd.js';
import { signalfdKind } from './signalfd.js';
import { timerfdKind } from './timerfd.js';
import { inotifyKind } from './inotify.js';
import { fanotifyKind } from './fanotify.js';
import { epollKind } from './epoll.js';
import { pidfdKind } from './pidfd.js';
import { ttyKind } from './tty.js';
import { pipeKind } from './pipe.js';
import { fifoKind } from './fifo.js';
import { memfdKind } from './memfd.js';
import { mqueueKind } from './mqueue.js';
import { regKind } from './reg.js';
import { inetKind } from './inet-kind.js';
import { netlinkKind } from './netlink-kind.js';
import { unixKind } from './unix-kind.js';

export const FD_KINDS = [eventfdKind, signalfdKind, timerfdKind, inotifyKind, fanotifyKind, epollKind, pidfdKind, ttyKind, pipeKind, fifoKind, memfdKind, mqueueKind, regKind, inetKind, netlinkKind, unixKind] as const;

/** The names the registered kinds go by (what the verification calls their fds). */
export type RegisteredKindName = (typeof FD_KINDS)[number]['name'];

/**
 * The registered kind of an fd, from its /proc link and mode; null for the other kinds. `at`:
 * where the fd is, for the kinds its link does not tell apart (sockets: without it, none).
 */
export function registeredKindOf(link: string, mode: number | null, at?: FdAt): AnyFdKind | null {
  return (FD_KINDS as readonly AnyFdKind[]).find((k) => k.recognise(link, mode, at)) ?? null;
}

/** The records of `kind` among files that carry a kind and its record (dump or restore side). */
export function recordsOf<R>(kind: AnyFdKind, files: Iterable<object>): R[] {
  const out: R[] = [];
  for (const f of files as Iterable<{ kind?: AnyFdKind; record?: unknown }>) if (f.kind === kind) out.push(f.record as R);
  return out;
}

/** The registered kind whose record a files.img entry carries, with that record; null if none. */
export function registeredKindOfEntry(entry: Partial<Record<FileEntryField, unknown>>): { kind: AnyFdKind; payload: unknown } | null {
  for (const k of FD_KINDS as readonly AnyFdKind[]) if (entry[k.field]) return { kind: k, payload: entry[k.field] };
  return null;
}
