// Who a queued datagram is sent again from at restore. A unix datagram carries the name its
// sender's socket had (recvfrom() returns it, and a server replies to it: a control socket's
// client, a syslog or time daemon's), so each message goes back from a socket of that name:
//   - the tree's own socket of that name, made by the restore;
//   - a live socket of that name outside the tree (a client that is not checkpointed), through
//     a copy of it taken with pidfd_getfd: it is the real sender;
//   - else a socket of ours bound to the name for the sends. A path is left as it was found: a
//     file made for the bind is removed after, a dead socket's file (nothing listens at it) is
//     made again with its owner and mode, directories made for it are removed.
// What cannot be sent as its sender (its path is now some other file, or a live socket that
// cryo cannot reach) fails the restore before the tasks run.
import { lstatSync, unlinkSync, mkdirSync, rmSync, chownSync, chmodSync, readdirSync, readlinkSync, mkdtempSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { tmpdir } from 'node:os';
import { AF, SOCK, E, socket, unixAddr, unixSockets, sysTry, sys, pidfdOpen, pidfdGetfd, closeFd } from '../../sys/index.js';
import { UserError } from '../../util/errors.js';
import { isPath, unixName, USK_EXTERN, type UnixSkData } from './unix.js';

export class DatagramSenders {
  private readonly made = new Map<string, number>();
  private readonly after: (() => void)[] = [];

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

  /** Closes the sockets of ours and puts the paths back as they were. */
  close(): void {
    const own = new Set(this.fds.values());
    for (const fd of this.made.values()) if (!own.has(fd)) closeFd(fd);
    this.made.clear();
    for (const f of this.after.splice(0).reverse()) f();
  }

  private outside(name: Buffer, what: string): number {
    const live = liveCopy(name);
    if (live !== null) return live;
    const fd = socket(AF.UNIX, SOCK.DGRAM);
    try {
      if (!isPath(name)) bindOrRefuse(fd, name, what);
      else this.bindPath(fd, name, what);
      return fd;
    } catch (e) {
      closeFd(fd);
      throw e;
    }
  }

  private bindPath(fd: number, name: Buffer, what: string): void {
    const path = unixName(name);
    if (!path.startsWith('/')) {
      // Relative to its sender's directory then: bound from a directory of ours, so the name is
      // the same string and nothing is left behind.
      const dir = mkdtempSync(join(tmpdir(), 'cryo-sender-'));
      const cwd = process.cwd();
      process.chdir(dir);
      try {
        bindOrRefuse(fd, name, what);
      } finally {
        process.chdir(cwd);
      }
      this.after.push(() => rmSync(dir, { recursive: true, force: true }));
      return;
    }
    let st = null;
    try {
      st = lstatSync(path);
    } catch {
      /* nothing there */
    }
    if (st && !st.isSocket()) throw new UserError(`${what}: that path is now ${st.isDirectory() ? 'a directory' : 'another file'}, so it cannot be sent as its sender`);
    if (st) {
      // A socket file nothing is bound to any more: a sender that has gone. Made again after, so
      // a reply finds what it would have found.
      if (!deadSocketFile(path)) throw new UserError(`${what}: a socket of another network namespace is bound to that path, so it cannot be sent as its sender`);
      const { uid, gid, mode } = st;
      unlinkSync(path);
      this.after.push(() => {
        chownSync(path, uid, gid);
        chmodSync(path, mode & 0o7777);
      });
      bindOrRefuse(fd, name, what);
      return;
    }
    const made = mkdirSync(dirname(path), { recursive: true });
    if (made) this.after.push(() => rmSync(made, { recursive: true, force: true }));
    bindOrRefuse(fd, name, what);
    this.after.push(() => unlinkSync(path));
  }
}

/** Whether nothing is bound to the socket file at `path` (a connect is refused). */
function deadSocketFile(path: string): boolean {
  const probe = socket(AF.UNIX, SOCK.DGRAM);
  try {
    const addr = unixAddr(Buffer.from(path + '\0'));
    return sysTry('connect', [probe, addr, addr.length]).errno === E.ECONNREFUSED;
  } finally {
    closeFd(probe);
  }
}

function bindOrRefuse(fd: number, name: Buffer, what: string): void {
  const addr = unixAddr(name);
  const r = sysTry('bind', [fd, addr, addr.length]);
  if (r.ret === 0) return;
  if (r.errno === E.EADDRINUSE) throw new UserError(`${what}: that name is taken by a socket cryo cannot send from (in another network namespace, or not held by any process), so it cannot be sent as its sender`);
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
  for (const pid of readdirSync('/proc').filter((p) => /^\d+$/.test(p))) {
    let fds: string[];
    try {
      fds = readdirSync(`/proc/${pid}/fd`);
    } catch {
      continue;
    }
    for (const fd of fds) {
      let link;
      try {
        link = readlinkSync(`/proc/${pid}/fd/${fd}`);
      } catch {
        continue;
      }
      const m = /^socket:\[(\d+)\]$/.exec(link);
      if (!m || !inodes.has(Number(m[1]))) continue;
      try {
        const pidfd = pidfdOpen(Number(pid));
        try {
          return pidfdGetfd(pidfd, Number(fd));
        } finally {
          closeFd(pidfd);
        }
      } catch {
        /* gone meanwhile: another holder, or none */
      }
    }
  }
  return null;
}
