// Data queued in a pty, in both directions, and how much of it survives.
//
// A tty has no MSG_PEEK: the only way to learn the queued bytes is to read them, which consumes
// them. What is recoverable (found on kernel 6.18, n_tty):
// - output (written to the slave, not read from the master yet): all of it, exactly. Reading the
//   master until EAGAIN also drains the flip buffer behind a full line discipline (n_tty_read
//   waits for the flush work before it answers EAGAIN). Writing it into a slave with OPOST off
//   puts the same bytes in front of the master's reader again. In packet mode a read may return
//   a control status byte (flush/stop/start notices) instead of data: those notices are lost.
// - input (written to the master, not read from the slave yet): in raw mode all of it, exactly.
//   In canonical mode only complete lines (and lines ended by VEOF, kept as a VEOF character):
//   a line typed without its end stays in the kernel, unreadable without switching ICANON off,
//   which would destroy the line boundaries of the original. It is left out (FIONREAD does not
//   count it either). The bytes go back into the slave's line discipline with echo, signals and
//   input mapping off and ICANON as it was, so the same lines form again; a character escaped with VLNEXT
//   inside such a line would be interpreted again. The bytes go in with TIOCSTI (processed at
//   once), not through the master (processed later, in a work item, under later termios).
// - counts (FIONREAD on either end, TIOCOUTQ) are read without loss; TIOCOUTQ of a pty is 0.
// Draining sets O_NONBLOCK on the description the task shares with us for the duration (the task
// is frozen) and puts its flags back.
import { sys, sysTry, E, SysError, F, O, TIOC, tcgets2, tcsets2, type Termios, ioctlGetInt } from '../../sys/index.js';

const OPOST = 0o1;
const ICANON = 0o2;
const VEOF = 4;
const VEOL = 11;
const VEOL2 = 16;

export interface QueueCounts {
  /** bytes read() on this end would return now (FIONREAD) */
  readable: number;
  /** bytes written on this end the driver has not sent (TIOCOUTQ) */
  unsent: number;
}

export function queueCounts(fd: number): QueueCounts {
  return { readable: ioctlGetInt(fd, TIOC.FIONREAD, `FIONREAD fd ${fd}`), unsent: ioctlGetInt(fd, TIOC.TIOCOUTQ, `TIOCOUTQ fd ${fd}`) };
}

export interface Drained {
  data: Buffer;
  /** the read ended with EIO: the other end is closed (a master whose slave was closed) */
  hungUp: boolean;
}

function withNonblock<T>(fd: number, fn: () => T): T {
  const fl = sys('fcntl', [fd, F.GETFL], `fd ${fd}`);
  if (!(fl & O.NONBLOCK)) sys('fcntl', [fd, F.SETFL, fl | O.NONBLOCK], `fd ${fd}`);
  try {
    return fn();
  } finally {
    if (!(fl & O.NONBLOCK)) sys('fcntl', [fd, F.SETFL, fl], `fd ${fd}`);
  }
}

function drain(fd: number, onChunk: (chunk: Buffer) => Buffer | null): Drained {
  return withNonblock(fd, () => {
    const parts: Buffer[] = [];
    const buf = Buffer.alloc(65536);
    for (;;) {
      const r = sysTry('read', [fd, buf, buf.length]);
      if (r.ret < 0) {
        if (r.errno === E.EAGAIN) return { data: Buffer.concat(parts), hungUp: false };
        if (r.errno === E.EIO) return { data: Buffer.concat(parts), hungUp: true };
        throw new SysError('read', r.errno, `pty fd ${fd}`);
      }
      const part = onChunk(Buffer.from(buf.subarray(0, r.ret)));
      if (part === null) return { data: Buffer.concat(parts), hungUp: false };
      parts.push(part);
    }
  });
}

/** Takes the program's output waiting on a master (consumed: put it back with putQueuedOutput). */
export function takeQueuedOutput(master: number, packetMode: boolean): Drained {
  return drain(master, (chunk) => {
    if (!chunk.length) return null;
    if (!packetMode) return chunk;
    return chunk[0] === 0 ? chunk.subarray(1) : Buffer.alloc(0); // TIOCPKT_DATA, or a status notice
  });
}

/**
 * Takes the input waiting on a slave (consumed: put it back with putQueuedInput). `termios` is
 * the slave's; in canonical mode each read is one line, and one not ended by a newline, VEOL or
 * VEOL2 was ended by VEOF (an empty read is a VEOF alone).
 */
export function takeQueuedInput(slave: number, termios: Termios): Drained {
  const canon = (termios.lflag & ICANON) !== 0;
  const enders = new Set([0x0a, termios.cc[VEOL], termios.cc[VEOL2]].filter((c) => c !== undefined && c !== 0));
  return drain(slave, (chunk) => {
    if (!canon) return chunk.length ? chunk : null;
    if (chunk.length && enders.has(chunk[chunk.length - 1]!)) return chunk;
    return Buffer.concat([chunk, Buffer.from([termios.cc[VEOF] ?? 4])]);
  });
}

function writeAll(fd: number, data: Buffer, what: string): void {
  withNonblock(fd, () => {
    for (let off = 0; off < data.length; ) {
      const r = sysTry('write', [fd, data.subarray(off), data.length - off]);
      if (r.ret < 0) throw new SysError('write', r.errno, `${what}: ${off} of ${data.length} bytes written back`);
      off += r.ret;
    }
  });
}

/** Puts output back in front of the master's reader: written into the slave with OPOST off. */
export function putQueuedOutput(slave: number, data: Buffer): void {
  if (!data.length) return;
  const t = tcgets2(slave);
  tcsets2(slave, { ...t, oflag: t.oflag & ~OPOST });
  try {
    writeAll(slave, data, `pty output`);
  } finally {
    tcsets2(slave, t);
  }
}

/**
 * Puts input back for the slave's reader: each byte pushed into the slave's line discipline with
 * TIOCSTI (needs CAP_SYS_ADMIN for a terminal that is not ours), with input mapping, echo and
 * signals off and ICANON as it is, so the same lines form again (ICANON itself is never
 * toggled: that would reset the line discipline's line boundaries). Not written into the
 * master: the kernel processes what a master writes later, in a work item, under whatever
 * termios are in force by then; TIOCSTI processes each byte before it returns.
 */
export function putQueuedInput(slave: number, data: Buffer): void {
  if (!data.length) return;
  const t = tcgets2(slave);
  tcsets2(slave, { ...t, iflag: 0, lflag: t.lflag & ICANON });
  try {
    const one = Buffer.alloc(1);
    for (let i = 0; i < data.length; i++) {
      one[0] = data[i]!;
      sys('ioctl', [slave, TIOC.TIOCSTI, one], `TIOCSTI: pty input, ${i} of ${data.length} bytes put back`);
    }
  } finally {
    tcsets2(slave, t);
  }
}
