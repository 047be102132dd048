// Unix sockets made again in the restorer, all at once before any task gets its fds (the unix
// kind's prepare, unix-kind.ts), so that peers and names exist whichever task holds which end.
import { unlinkSync, chmodSync, chownSync, lstatSync } from 'node:fs';
import {
  AF, SOCK, TCP_STATE, socket, socketpair, bind, listen, connect, shutdown, send, unixAddr, sendWithFds, sys, sysTry, getsockname, asThreadCreds, O, F,
  type ThreadCreds,
} from '../../sys/index.js';
import { UserError } from '../../util/errors.js';
import { restoreSkOpts } from './sk-opts.js';
import { USK_EXTERN, TYPE_NAME, isPath, unixName, type UnixSkData, type QueuedData } from './unix.js';
import { DatagramSenders } from './unix-senders.js';
import { bindDetached, deadSocketFile } from './unix-bind.js';

/**
 * Binds to a path or abstract name; a dead socket file left at the path is replaced. A socket
 * whose file was gone at the dump (removed, its directory too) gets its name without a file, and
 * whatever is at that path now is left alone.
 */
function bindName(fd: number, e: UnixSkData, what: string): void {
  const path = isPath(e.name) ? unixName(e.name) : null;
  if (path !== null && e.deleted) {
    bindDetached(fd, Buffer.from(e.name), what);
    return;
  }
  let st = null;
  try {
    st = path === null ? null : lstatSync(path);
  } catch {
    /* nothing there */
  }
  if (st?.isSocket()) {
    // Its own file, dead since the dump; a live socket there is another program's, left alone.
    if (!deadSocketFile(path!)) throw new UserError(`${what}: ${path} is bound by a live socket now (another program's) — stop it, or restore where the path is free`);
    unlinkSync(path!);
  }
  bind(fd, unixAddr(Buffer.from(e.name)), what);
  if (path !== null && e.filePerms) {
    chownSync(path, e.filePerms.uid, e.filePerms.gid);
    chmodSync(path, e.filePerms.mode & 0o7777);
  }
}

/** Recorded ids (`cryo_peer_cred`, `cryo_holder_cred`) as the thread takes them; null if none. */
function idsOf(c: UnixSkData['cryoPeerCred']): ThreadCreds | null {
  return c ? { uid: c.uid ?? 0, gid: c.gid ?? 0, groups: [...(c.groups ?? [])] } : null;
}

/** The peer credentials socket `e` had (SO_PEERCRED, SO_PEERGROUPS), null if none. */
const credOf = (e: UnixSkData) => idsOf(e.cryoPeerCred);

/** `fn` under `ids` when there are any, else as cryo. */
function asIds<T>(ids: ThreadCreds | null, fn: () => T): T {
  return ids ? asThreadCreds(ids, fn) : fn();
}

const sameCreds = (a: ThreadCreds, b: ThreadCreds) => a.uid === b.uid && a.gid === b.gid && a.groups!.join() === b.groups!.join();

/** `fn` (a socketpair, listen or connect) as whoever made `e`'s connection, so that its peer credentials are theirs. */
function asMaker<T>(e: UnixSkData, fn: () => T): T {
  return asIds(credOf(e), fn);
}

/**
 * The two ends of a connection within the tree, with the peer credentials each showed. Those of
 * a socketpair() are its maker's, on both ends. An accepted connection's ends show each other's
 * makers: the client the listener's (at its listen()), the accepted end its client's (at its
 * connect()); it is made again so, through a listener of ours under the first, bound to the
 * listener's name when it had one (the accepted end shows that name), and a connect under the
 * second. (The peer pid is cryo's: credentials are per thread, a pid is not.)
 */
function makePair(e: UnixSkData, peer: UnixSkData, what: string): [number, number] {
  const ce = credOf(e), cp = credOf(peer);
  if (!ce || !cp || sameCreds(ce, cp) || e.type === SOCK.DGRAM) return asMaker(e, () => socketpair(e.type));
  // The accepted end has the listener's name; a client bound to a name of its own is rare.
  const acceptedIsPeer = peer.name.length > 0 || e.name.length === 0;
  const [client, accepted] = acceptedIsPeer ? [e, peer] : [peer, e];
  const [c, a] = acceptedConnection(e.type, credOf(client)!, credOf(accepted)!, Buffer.from(accepted.name), what);
  return acceptedIsPeer ? [c, a] : [a, c];
}

function acceptedConnection(type: number, listener: ThreadCreds, connector: ThreadCreds, name: Buffer, what: string): [number, number] {
  const l = socket(AF.UNIX, type);
  const c = socket(AF.UNIX, type);
  try {
    const join = (addr: Buffer) => {
      asThreadCreds(listener, () => listen(l, 1, `${what}: a listener for its connection`));
      asThreadCreds(connector, () => connect(c, addr, `${what}: its connection`));
    };
    if (isPath(name)) {
      bindDetached(l, name, what, (reach) => join(unixAddr(Buffer.from(reach + '\0'))));
    } else {
      // Its abstract name is free until the sockets are bound (step 2), unless taken from outside.
      const addr = name.length ? unixAddr(name) : Buffer.from([AF.UNIX, 0]);
      const bound = sysTry('bind', [l, addr, addr.length]).ret === 0;
      if (!bound) sys('bind', [l, Buffer.from([AF.UNIX, 0]), 2], `${what}: autobind of a listener`);
      join(bound ? addr : getsockname(l)!);
    }
    const a = sys('accept4', [l, 0, 0, SOCK.CLOEXEC], `${what}: accept its connection`);
    return [c, a];
  } catch (err) {
    sys('close', [c]);
    throw err;
  } finally {
    sys('close', [l]);
  }
}

/**
 * Creates every unix socket of the image in the restorer: our fd for each (by file id), with its
 * name, connection, queued data, shutdown state, options and status flags as they were. Queues
 * whose messages name their senders (SO_PASSCRED, unix-creds.ts) are filled, with every other
 * queue and the shutdowns after them, by `later(true)` once the tree's tasks exist (a pid must exist to be
 * named); `later(false)` only lets go of what it kept for that. `later` is null when nothing waits.
 */
export function restoreUnixSockets(
  entries: UnixSkData[],
  queues: Map<number, QueuedData[]>,
  openFile: (id: number) => number,
): { fds: Map<number, number>; later: ((send: boolean) => void) | null } {
  const byIno = new Map(entries.map((e) => [e.ino, e]));
  const fds = new Map<number, number>();
  const helpers: number[] = [];
  /** For each socket: an fd whose writes land in its receive queue. */
  const feeder = new Map<number, number>();
  const what = (e: UnixSkData) => `unix ${TYPE_NAME[e.type] ?? e.type} socket ${e.ino}${e.name.length ? ` (${unixName(e.name)})` : ''}`;
  const local = entries.filter((e) => !(e.uflags & USK_EXTERN));
  try {
    // 1. Create: pairs where both ends are here (or the peer end was closed), single sockets else.
    for (const e of local) {
      if (fds.has(e.id)) continue;
      const peer = e.peer ? byIno.get(e.peer) : undefined;
      // A datagram socket connected to itself is bound and connected to its own name below.
      const paired = e.state !== TCP_STATE.LISTEN && peer && peer !== e && !(peer.uflags & USK_EXTERN) && peer.peer === e.ino;
      const orphaned = e.type !== SOCK.DGRAM && e.state === TCP_STATE.ESTABLISHED && !e.peer;
      if (paired) {
        const [a, b] = makePair(e, peer, what(e));
        fds.set(e.id, a);
        fds.set(peer.id, b);
        feeder.set(e.id, b);
        feeder.set(peer.id, a);
      } else if (orphaned) {
        // Its peer had closed: the data left in it is read, then EOF.
        const [a, b] = socketpair(e.type);
        fds.set(e.id, a);
        feeder.set(e.id, b);
        helpers.push(b);
      } else {
        fds.set(e.id, socket(AF.UNIX, e.type));
      }
    }
    // 2. Names and listening sockets. Connected stream ends share their listener's name and are
    // not bound again.
    for (const e of local) {
      const fd = fds.get(e.id)!;
      restoreSkOpts(fd, e.opts, what(e));
      const streamEnd = e.type !== SOCK.DGRAM && e.state !== TCP_STATE.LISTEN;
      if (e.name.length && !streamEnd) bindName(fd, e, what(e));
      if (e.state === TCP_STATE.LISTEN) asMaker(e, () => listen(fd, e.backlog, what(e)));
    }
    // 3. Connections to a named socket: datagram sockets aimed at one, clients whose connection
    // was waiting in a listener's queue (it waits there again), and peers outside the tree.
    for (const e of local) {
      const peer = e.peer ? byIno.get(e.peer) : undefined;
      if (!peer || feeder.has(e.id)) continue;
      if (!peer.name.length) throw new UserError(`${what(e)}: its peer ${peer.ino} has no name to connect to`);
      // A stream connect under its holder's ids: the accepting end shows them as its peer's.
      asIds(e.type !== SOCK.DGRAM ? idsOf(e.cryoHolderCred) : null, () => connect(fds.get(e.id)!, unixAddr(Buffer.from(peer.name)), `${what(e)}: connect to ${unixName(peer.name)}`));
    }
    // 4. Queued messages, sent from the peer end (or to the socket's name), then shutdown. Fds in
    // flight are opened now, whenever they are sent: sockets made here, anything else by the caller.
    const rights = new Map<QueuedData, number[]>();
    for (const q of queues.values()) for (const m of q) rights.set(m, m.rights.map((id) => fds.get(id) ?? openFile(id)));
    // Status flags now (the verification compares them); sends never block (MSG_DONTWAIT).
    for (const e of local) {
      const fl = e.flags & ~(O.ACCMODE | O.CLOEXEC);
      if (fl) sys('fcntl', [fds.get(e.id)!, F.SETFL, fl]);
    }
    const fill = () => {
      const senders = new DatagramSenders(local, fds);
      try {
        for (const e of local) fillQueue(e, queues.get(e.id) ?? [], { fds, feeder, byIno, rights, what, senders });
      } finally {
        senders.close();
      }
      for (const e of local) if (e.shutdown) shutdown(fds.get(e.id)!, e.shutdown - 1, what(e));
    };
    const closeHelpers = () => {
      for (const fd of helpers.splice(0)) sys('close', [fd]);
    };
    if (![...queues.values()].some((q) => q.some((m) => m.creds))) {
      fill();
      closeHelpers();
      return { fds, later: null };
    }
    return {
      fds,
      later: (send) => {
        try {
          if (send) fill();
        } finally {
          closeHelpers();
        }
      },
    };
  } catch (err) {
    for (const fd of new Set([...fds.values(), ...helpers])) sys('close', [fd]);
    throw err;
  }
}

interface FillContext {
  fds: Map<number, number>;
  feeder: Map<number, number>;
  byIno: Map<number, UnixSkData>;
  rights: Map<QueuedData, number[]>;
  what: (e: UnixSkData) => string;
  senders: DatagramSenders;
}

/**
 * One socket's queue back: a datagram that names its sender from a socket of that name
 * (unix-senders.ts), the rest from its peer end, its peer, or a sender of ours to its name.
 */
function fillQueue(e: UnixSkData, q: QueuedData[], c: FillContext): void {
  if (!q.length) return;
  const { fds, feeder, byIno, rights, what, senders } = c;
  if (e.type === SOCK.DGRAM && q.some((m) => m.sender)) {
    const to = e.name.length ? unixAddr(Buffer.from(e.name)) : undefined;
    for (const m of q) {
      if (m.sender) sendWithFds(senders.fdFor(m.sender, what(e)), m.data, rights.get(m)!, to, m.creds);
      else fillQueue(e, [m], c);
    }
    return;
  }
  const to = feeder.get(e.id);
  const fdsOf = (m: QueuedData) => rights.get(m)!;
  const stream = e.type === SOCK.STREAM;
  if (to !== undefined) {
    for (const m of q) {
      if (m.creds) sendAllWithCreds(to, m, fdsOf(m), stream);
      else if (m.rights.length) sendWithFds(to, m.data, fdsOf(m));
      else writeAll(to, m.data, stream);
    }
  } else if (e.type === SOCK.DGRAM && e.peer && fds.has(byIno.get(e.peer)?.id ?? -1) && (e.peer === e.ino || e.name.length)) {
    // A connected datagram socket takes messages from its peer only: they came from there.
    const from = fds.get(byIno.get(e.peer)!.id)!;
    for (const m of q) sendWithFds(from, m.data, fdsOf(m), e.peer === e.ino ? undefined : unixAddr(Buffer.from(e.name)), m.creds);
  } else if (e.type === SOCK.DGRAM && e.name.length) {
    const tmp = socket(AF.UNIX, SOCK.DGRAM);
    try {
      for (const m of q) sendWithFds(tmp, m.data, fdsOf(m), unixAddr(Buffer.from(e.name)), m.creds);
    } finally {
      sys('close', [tmp]);
    }
  } else {
    throw new UserError(`${what(e)}: has queued data but no peer to send it from`);
  }
}

/** A message with its sender's credentials: whole for a datagram, in as many sends as a stream takes. */
function sendAllWithCreds(fd: number, m: QueuedData, fds: number[], stream: boolean): void {
  let off = sendWithFds(fd, m.data, fds, undefined, m.creds);
  while (stream && off < m.data.length) off += sendWithFds(fd, m.data.subarray(off), [], undefined, m.creds);
}

/** A datagram goes in whole; stream bytes may take several sends. */
function writeAll(fd: number, data: Buffer, stream: boolean): void {
  if (!stream) {
    send(fd, data);
    return;
  }
  for (let off = 0; off < data.length; ) off += send(fd, data.subarray(off));
}
