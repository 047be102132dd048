// Senders' credentials of the messages queued for a unix socket that asked for them
// (SO_PASSCRED: each message read comes with its sender's pid, uid and gid; SO_PASSPIDFD: with a
// pidfd of it). The restore puts a queue back from cryo's own sockets, so a message sent as it
// is carries cryo's credentials; one sent with SCM_CREDENTIALS carries the ones named, and cryo
// may name any ids and any pid that exists. So the dump keeps each message's (sk_packet_entry
// cryo_ucred) and the restore sends such queues once every task of the tree exists (a pid must
// exist to be named: the unix kind's afterTasks). What cannot be sent so is refused by check
// and dump.
import { SOL, SO, getsockoptInt, sys, type UnixDiag } from '../../sys/index.js';
import type { BlockerCause } from '../../util/blocker.js';
import type { pstree_entry } from '../../image/gen/pstree_pb.js';
import { UserError } from '../../util/errors.js';
import type { KindImages } from './fd-kind.js';
import { describeUnix, type QueuedData } from './unix.js';
import { QueueWalks } from './queue-walks.js';

/** SO_PASSPIDFD (asm-generic/socket.h, 6.5). */
const SO_PASSPIDFD = 76;
/** Largest message peeked at for its credentials (as the dump reads queues). */
const MAX_MESSAGE = 8 << 20;

function optionOn(fd: number, opt: number): boolean {
  try {
    return getsockoptInt(fd, SOL.SOCKET, opt) !== 0;
  } catch {
    return false; // SO_PASSPIDFD before 6.5
  }
}

/**
 * Why the messages queued on this socket cannot be put back with their senders' credentials,
 * from our copy `ours` of it (null if they can): a pidfd of the sender cannot be named, and a
 * sender that is not a task of the tree (`tree`: its thread group ids) is gone or outside, so the
 * restore could not name its pid. Peeks at the queue (nothing is taken off it).
 */
export function queueCredsBlocker(ours: number, d: UnixDiag, tree: ReadonlySet<number>, queues: QueueWalks): BlockerCause | null {
  if (!QueueWalks.mayHold(d)) return null;
  const refuse = (reason: string): BlockerCause => ({
    kind: 'socket',
    reason: `${describeUnix(d)}: messages queued ${reason}`,
    hint: 'checkpoint once the program has read its queue',
  });
  if (optionOn(ours, SO_PASSPIDFD)) return refuse(`for a reader of its senders' pidfds (SO_PASSPIDFD) — a restore would send them as cryo; not supported`);
  if (!optionOn(ours, SO.PASSCRED)) return null;
  const queue = queues.walk(d, ours, MAX_MESSAGE);
  if (!queue) return null; // a look before the freeze: the one under it judges
  for (const m of queue) for (const f of m.fds) sys('close', [f]);
  const strangers = [...new Set(queue.flatMap((m) => (m.creds && !tree.has(m.creds.pid) ? [m.creds.pid] : [])))];
  if (!strangers.length) return null;
  return refuse(
    `with their senders' credentials (SO_PASSCRED), from pid ${strangers.join(', ')}: not a task of the dumped tree (gone, or outside), so a restore could not send them as it; not supported`,
  );
}

/**
 * The images' senders are tasks of the tree (pstree.img: its processes and zombies), checked
 * before anything is made: another pid could name a process that is not the sender.
 */
export function validateSenders(queues: Map<number, QueuedData[]>, images: KindImages): void {
  const named = [...queues].flatMap(([id, q]) => q.flatMap((m) => (m.creds ? [{ id, pid: m.creds.pid }] : [])));
  if (!named.length) return;
  const tree = new Set(((images.read('pstree.img') ?? []) as pstree_entry[]).map((p) => p.pid));
  const stranger = named.find((n) => !tree.has(n.pid));
  if (stranger) throw new UserError(`sk-queues.img: a message on socket ${stranger.id} names pid ${stranger.pid} as its sender, not a task of the tree`);
}
