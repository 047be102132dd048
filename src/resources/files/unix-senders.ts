// Who a queued datagram is sent again from at restore. A unix datagram carries the name its
// sender's socket had (recvfrom() returns it, and a server replies to it: a control socket's
// client, a syslog or time daemon's), so each message goes back from a socket of that name:
//   - the tree's own socket of that name, made by the restore;
//   - a live socket of that name outside the tree (a client that is not checkpointed), through
//     a copy of it taken with pidfd_getfd: it is the real sender;
//   - else a socket of ours bound to the name for the sends: an abstract name as it is, a path
//     without touching it (unix-bind.ts), so a reply finds what it would have found (a dead
//     socket's file, a removed directory).
// What cannot be sent as its sender (an abstract name taken by a socket cryo cannot reach) fails
// the restore before the tasks run.
import { AF, SOCK, E, socket, unixAddr, unixSockets, sysTry, sys, closeFd } from '../../sys/index.js';
import { UserError } from '../../util/errors.js';
import { isPath, unixName, USK_EXTERN, type UnixSkData } from './unix.js';
import { bindDetached } from './unix-bind.js';
import { everyFdLink, ourCopy, socketInode } from './our-copy.js';

export class DatagramSenders {
  private readonly made = new Map<string, number>();

  /** `local`: the image's sockets made here, `fds`: ours of them by file id. */
  constructor(private readonly local: UnixSkData[], private readonly fds: Map<number, number>) {}

  /** An fd whose datagrams carry `name` as their sender's. */
  fdFor(name: Buffer, what: string): number {
    const key = name.toString('hex');
    const known = this.made.get(key);
    if (known !== undefined) return known;
    const own = this.local.find((e) => e.type === SOCK.DGRAM && !(e.uflags & USK_EXTERN) && Buffer.compare(Buffer.from(e.name), name) === 0);
    const fd = own ? this.fds.get(own.id)! : this.outside(name, `${what}: a message from ${unixName(name)}`);
    this.made.set(key, fd);
    return fd;
  }

  /** Closes the sockets of ours. */
  close(): void {
    const own = new Set(this.fds.values());
    for (const fd of this.made.values()) if (!own.has(fd)) closeFd(fd);
    this.made.clear();
  }

  private outside(name: Buffer, what: string): number {
    const live = liveCopy(name);
    if (live !== null) return live;
    const fd = socket(AF.UNIX, SOCK.DGRAM);
    try {
      if (isPath(name)) bindDetached(fd, name, what);
      else bindOrRefuse(fd, name, what);
      return fd;
    } catch (e) {
      closeFd(fd);
      throw e;
    }
  }
}

function bindOrRefuse(fd: number, name: Buffer, what: string): void {
  const addr = unixAddr(name);
  const r = sysTry('bind', [fd, addr, addr.length]);
  if (r.ret === 0) return;
  if (r.errno === E.EADDRINUSE) throw new UserError(`${what}: that name is taken by a socket no process holds (in flight, say), so it cannot be sent as its sender`);
  sys('bind', [fd, addr, addr.length], what); // throws, with the errno named
}

/**
 * Our copy of a live datagram socket named `name` in this network namespace, from a process
 * holding it (null if there is none).
 */
function liveCopy(name: Buffer): number | null {
  const inodes = new Set<number>();
  for (const d of unixSockets().values()) if (d.type === SOCK.DGRAM && Buffer.compare(d.name, name) === 0) inodes.add(d.ino);
  if (!inodes.size) return null;
  for (const { pid, fd, link } of everyFdLink()) {
    if (!inodes.has(socketInode(link) ?? -1)) continue;
    try {
      return ourCopy(pid, fd);
    } catch {
      /* gone meanwhile: another holder, or none */
    }
  }
  return null;
}
