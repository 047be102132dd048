// What a walk of a queue saw, and how a later walk gets back the empty messages it hid. A walk
// that left its process running (a --leave-running dump, `cryo check`)
// saw of the empty messages it marked peeked: no later peek at an offset sees them again
// (sys/socket.ts peekQueue), so the next walk of the same socket, in another cryo run, would
// lose them. Each such walk leaves a note under /run/cryo/peeked, by the socket's cookie
// (SO_COOKIE: never reused while the machine runs), of every message it saw; the next walk puts
// the hidden empty messages back where the note has them.
//
// The program may have read some of its queue between the two walks, and new messages may have
// come: the note's messages still queued are a tail of it, and the ones visible of them (all but
// the empty messages after the first) must begin what the walk sees now. The longest such tail
// is taken, that is the fewest messages read since. That is right unless the queue, read since,
// holds again the same bytes from the same senders as before.
import { mkdirSync, readFileSync, writeFileSync, renameSync, unlinkSync, readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { createHash } from 'node:crypto';
import { SOL, getsockoptRaw, type QueuedMessage } from '../../sys/index.js';

const SO_COOKIE = 57;
const DIR = process.env.CRYO_PEEKED_DIR ?? '/run/cryo/peeked';
/** Notes older than this are of sockets long gone (or read long since): removed. */
const MAX_AGE_MS = 7 * 24 * 3600 * 1000;

export interface Noted {
  size: number;
  fds: number;
  hash: string;
  sender?: string;
  creds?: { pid: number; uid: number; gid: number };
}

const hashOf = (m: QueuedMessage) => createHash('sha1').update(m.data).update(String(m.fds.length)).digest('hex');
const senderOf = (m: QueuedMessage) => (m.from?.length ? m.from.toString('hex') : undefined);

function cookieOf(fd: number): string {
  return getsockoptRaw(fd, SOL.SOCKET, SO_COOKIE, 8).readBigUInt64LE(0).toString();
}

function readNote(cookie: string): Noted[] | null {
  try {
    return JSON.parse(readFileSync(join(DIR, cookie), 'utf8')) as Noted[];
  } catch {
    return null;
  }
}

/** The messages the previous walk saw, as a later walk sees them: the first, then the non-empty. */
function visible(tail: Noted[]): Noted[] {
  return tail.filter((n, i) => i === 0 || n.size > 0);
}

/** Whether a walk's messages (their sizes) hold an empty one after the first: hidden from later walks. */
export const hidesEmpties = (sizes: number[]) => sizes.some((n, i) => i > 0 && n === 0);

/** What a walk saw of each message: what a later walk matches it by. */
export function noteOf(msgs: QueuedMessage[]): Noted[] {
  return msgs.map((m) => {
    const sender = senderOf(m);
    return { size: m.data.length, fds: m.fds.length, hash: hashOf(m), ...(sender ? { sender } : {}), ...(m.creds ? { creds: m.creds } : {}) };
  });
}

/** `got` with the empty messages the note of socket `fd` has and no peek sees any more. */
export function withNotedEmpties(fd: number, got: QueuedMessage[]): QueuedMessage[] {
  const note = readNote(cookieOf(fd));
  return note ? withHiddenEmpties(note, got) : got;
}

/** `got` with the empty messages of `note` (an earlier walk's) that are still queued and hidden. */
export function withHiddenEmpties(note: Noted[], got: QueuedMessage[]): QueuedMessage[] {
  if (!hidesEmpties(note.map((n) => n.size))) return got;
  const hashes: string[] = [];
  const same = (n: Noted, i: number) => {
    const m = got[i]!;
    return n.size === m.data.length && n.sender === senderOf(m) && n.hash === (hashes[i] ??= hashOf(m));
  };
  for (let k = 0; k < note.length; k++) {
    const tail = note.slice(k);
    const seen = visible(tail);
    if (seen.length > got.length || !seen.every((n, i) => same(n, i))) continue;
    const out: QueuedMessage[] = [];
    let j = 0;
    tail.forEach((n, i) => {
      if (i > 0 && n.size === 0) {
        if (n.fds) throw new Error(`an empty message carrying fds, peeked at by an earlier walk, cannot be read again`);
        out.push({ data: Buffer.alloc(0), fds: [], ...(n.sender ? { from: Buffer.from(n.sender, 'hex') } : {}), ...(n.creds ? { creds: n.creds } : {}) });
      } else out.push(got[j++]!);
    });
    return out.concat(got.slice(j));
  }
  return got; // all of it read since
}

/**
 * After a walk of socket `fd` that saw `msgs`: a note of them if an empty message after the
 * first is now hidden from later walks, else none.
 */
export function noteWalk(fd: number, msgs: QueuedMessage[]): void {
  const cookie = cookieOf(fd);
  const path = join(DIR, cookie);
  if (!hidesEmpties(msgs.map((m) => m.data.length))) {
    try {
      unlinkSync(path);
    } catch {
      /* none */
    }
    return;
  }
  const note = noteOf(msgs);
  mkdirSync(DIR, { recursive: true, mode: 0o700 });
  pruneOld();
  const tmp = `${path}.${process.pid}.tmp`;
  writeFileSync(tmp, JSON.stringify(note), { mode: 0o600 });
  renameSync(tmp, path);
}

function pruneOld(): void {
  const now = Date.now();
  for (const f of readdirSync(DIR)) {
    try {
      if (now - statSync(join(DIR, f)).mtimeMs > MAX_AGE_MS) unlinkSync(join(DIR, f));
    } catch {
      /* removed meanwhile */
    }
  }
}
