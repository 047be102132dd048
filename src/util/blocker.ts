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
  return `${blockerWhere(b)}: ${b.reason}${b.hint ? ` (${b.hint})` : ''}`;
}

/**
 * TEMPORARY adapter while producers still build strings (`pid N[ fd M| mapping X]: reason`):
 * the kind-interface work replaces every producer with a Blocker built directly, then removes this.
 */
export function blockerFromText(text: string): Blocker {
  const m = /^pid (\d+)(?: fd (\d+)| mapping (\S+))?: ([\s\S]*)$/.exec(text);
  if (!m) return { pid: 0, kind: 'tree', reason: text };
  const b: Blocker = { pid: Number(m[1]), kind: m[2] ? 'fd' : m[3] ? 'mapping' : 'task', reason: m[4]! };
  if (m[2]) b.fd = Number(m[2]);
  if (m[3]) b.mapping = m[3];
  return b;
}
