// The fd table part of what a restored task must show: per fd its kind, flags, position or path,
// and the kind-specific state the images record (see resources/observe/read-fds.ts).
import { isFieldSet, type DescMessage, type Message } from '@bufbuild/protobuf';
import { O } from '../sys/index.js';
import { fdFlagSet } from '../resources/observe/names.js';
import { OBJECT_KINDS, type ObservedKind } from '../resources/observe/fd-kinds.js';
import { fdKey, lockText } from '../resources/observe/read-fds.js';
import type { Snapshot } from '../resources/observe/snapshot.js';
import type { CheckpointImage, TaskImage } from './images.js';

/** Whether the image holds field `name` of `msg` (proto2 presence, never `!== undefined`). */
export function has(msg: Message | undefined, schema: DescMessage, name: string): boolean {
  const f = schema.field[name];
  return msg !== undefined && f !== undefined && isFieldSet(msg, f);
}

const LOCK_KIND: Record<number, string> = { 1: 'POSIX', 2: 'FLOCK', 4: 'OFDLCK', 8: 'LEASE' };
const F_WRLCK = 1;

/** An fd's open file description as the images have it: kind, status flags, more by kind. */
interface Described {
  kind: ObservedKind;
  /** A registered kind's own expectations (resources/files/registry.ts). */
  expect?: (s: Snapshot, key: string) => void;
  flags: number;
}

function describe(ckpt: CheckpointImage, id: number): Described | null {
  const registered = ckpt.kindFiles.get(id);
  if (!registered) return null;
  const { kind, record } = registered;
  // A pipe that led outside the tree is whatever --inherit-fd gave in its place.
  if (kind.inherited?.(record)) return null;
  return { kind: (kind.recordName?.(record) ?? kind.name) as ObservedKind, flags: record.flags, expect: (s, key) => kind.expect?.(record, s, key) };
}

export function expectFds(s: Snapshot, ckpt: CheckpointImage, img: TaskImage): void {
  s.set('fds', { set: img.fdinfo.map((f) => f.fd).sort((a, b) => a - b).map(String) });
  const locks = ckpt.locks.get(img.pid) ?? [];
  for (const fi of img.fdinfo) {
    const d = describe(ckpt, fi.id);
    if (!d) continue; // restore itself refuses what it does not know
    const key = fdKey(fi.fd, d.kind);
    s.set(key, fdFlagSet(d.flags & ~O.CLOEXEC, (fi.flags & 1) !== 0, OBJECT_KINDS.has(d.kind)));
    // Positions and paths are the kinds' own (regular files and memfds have positions).
    d.expect?.(s, key);
    const mine = locks.filter((l) => l.fd === fi.fd && LOCK_KIND[l.flag]);
    if (mine.length) {
      s.set(`${key} locks`, {
        set: mine.map((l) => lockText(LOCK_KIND[l.flag]!, l.type === F_WRLCK ? 'WRITE' : 'READ', l.start, l.len === 0n ? null : l.start + l.len - 1n)),
      });
    }
  }
}
