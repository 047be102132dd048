// The walks of the unix sockets' receive queues during one scan of a tree. Several steps peek at
// a queue (the fds in flight, the senders' credentials, the dump itself), and every walk but the
// first is blind to an empty message: the first one returned it and the kernel marked it peeked,
// after which a peek at an offset steps over it (sys/socket.ts peekQueue). Under the freeze
// nothing of the tree takes a message off a queue, so what one walk saw is still there for the
// next: each later walk gets the empty messages back in the places the first walk saw them.
// Across cryo runs the same holds through a note of each walk (peeked-marks.ts).
// A scan made before the freeze walks no datagram or seqpacket queue (`peek: false`): its marks
// would hide the empty messages from the walks under the freeze, which are the ones the dump
// keeps. What such a scan says of sockets in flight is then unsure (`unsure`).
import { SOCK, TCP_STATE, peekQueue, sys, type QueuedMessage, type UnixDiag } from '../../sys/index.js';
import { withNotedEmpties, withHiddenEmpties, hidesEmpties, noteWalk, noteOf, type Noted } from './peeked-marks.js';

export class QueueWalks {
  private readonly seen = new Map<number, Noted[]>();
  /** Some queue that may hold sockets in flight was left unwalked. */
  unsure = false;

  /** `peek`: false for a look before the freeze, which leaves message queues unwalked. */
  constructor(readonly peek: boolean) {}

  /** Whether socket `d` may have messages queued (an empty message shows in no length). */
  static mayHold(d: UnixDiag): boolean {
    return d.state !== TCP_STATE.LISTEN && (d.rqueue > 0 || d.type !== SOCK.STREAM);
  }

  /**
   * The messages queued on socket `d`, through our copy `fd` of it, left in place (their fds
   * are ours to close), with a datagram's sender. Null for a datagram or seqpacket socket when
   * this scan walks none.
   */
  walk(d: UnixDiag, fd: number, maxMessage: number): QueuedMessage[] | null {
    if (!this.peek && d.type !== SOCK.STREAM) {
      this.unsure = true;
      return null;
    }
    const ino = d.ino;
    // Every walk asks for senders: the first one's are those of the empty messages later walks miss.
    let got = peekQueue(fd, maxMessage, { senders: d.type === SOCK.DGRAM });
    if (d.type === SOCK.STREAM) return got;
    const before = this.seen.get(ino);
    try {
      if (before) return withHiddenEmpties(before, got);
      // The first walk of this scan: what an earlier cryo run hid from it comes back from its note.
      got = withNotedEmpties(fd, got);
      noteWalk(fd, got);
    } catch (e) {
      for (const m of got) for (const f of m.fds) sys('close', [f]);
      throw e;
    }
    // Only a walk that hid an empty message leaves later walks anything to put back.
    this.seen.set(ino, hidesEmpties(got.map((m) => m.data.length)) ? noteOf(got) : []);
    return got;
  }
}
