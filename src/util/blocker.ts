// A blocker: something in the target that cryo cannot checkpoint, found before anything is
// touched. Data, so `check --json`, `dump --json` and the RPC can hand it on; text only when
// printed.

export interface Blocker {
  pid: number;
  /** The fd it is about, when it is about one. */
  fd?: number;
  /** The mapping it is about (`0xSTART-0xEND`), when it is about one. */
  mapping?: string;
  /** What kind of object: 'pipe', 'socket', 'terminal', 'namespace', 'mapping', 'task', ... */
  kind: string;
  /** Why it cannot be checkpointed, one line, without the pid/fd prefix. */
  reason: string;
  /** What the user can do about it (a flag to give, a thing to install), when there is one. */
  hint?: string;
}

/** Where a blocker is: `pid 42 fd 3`, `pid 42 mapping 0x1000-0x2000` or `pid 42`. */
export function blockerWhere(b: Blocker): string {
  if (b.fd !== undefined) return `pid ${b.pid} fd ${b.fd}`;
  if (b.mapping !== undefined) return `pid ${b.pid} mapping ${b.mapping}`;
  return `pid ${b.pid}`;
}

/** One line, as `check` and `dump` print it. */
export function blockerText(b: Blocker): string {
  return `${blockerWhere(b)}: ${causeText(b)}`;
}

/** Where a blocker is, without what it is. */
export type BlockerPlace = Pick<Blocker, 'pid' | 'fd' | 'mapping'>;

/** What blocks, from a producer that does not know where (a socket judged by its diag entry). */
export type BlockerCause = Pick<Blocker, 'kind' | 'reason' | 'hint'>;

/** The blocker `cause` at `place`. */
export function blockerAt(place: BlockerPlace, cause: BlockerCause): Blocker {
  const b: Blocker = { pid: place.pid, kind: cause.kind, reason: cause.reason };
  if (place.fd !== undefined) b.fd = place.fd;
  if (place.mapping !== undefined) b.mapping = place.mapping;
  if (cause.hint !== undefined) b.hint = cause.hint;
  return b;
}

/** The reason and hint of a cause as one text (what `check` prints after the fd). */
export function causeText(c: BlockerCause): string {
  return `${c.reason}${c.hint ? ` (${c.hint})` : ''}`;
}
