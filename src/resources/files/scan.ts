// What the open files of a whole tree look like, taken once per check or dump, and what the user
// allows: the view every file module judges its fds and mappings against.
import { readdirSync, readlinkSync, fstatSync, lstatSync, readFileSync, statSync } from 'node:fs';
import { unixSockets, closeFd, withNetns, openNetns, type UnixDiag } from '../../sys/index.js';
import { pipeInode, socketInode, withOurCopy, everyFdLink } from './our-copy.js';
import { scanTerminals, type TreeTerminals } from './tty-scan.js';
import { QueueWalks } from './queue-walks.js';
import { DEFAULT_GHOST_LIMIT } from '../../util/option-defaults.js';

export interface ScanOptions {
  /** Unix peers outside the tree are allowed: reconnected by name on restore. */
  extUnixSk?: boolean;
  /** Largest deleted file whose contents are saved in the images (bytes). */
  ghostLimit?: number;
  /** File locks are saved (otherwise a task holding one is refused). */
  fileLocks?: boolean;
  /** The tree's terminal from outside is the caller's, reattached on restore (--shell-job). */
  shellJob?: boolean;
  /** TCP connections are dumped in repair mode (--tcp-established), not refused. */
  tcpEstablished?: boolean;
  /** TCP connections are dumped as closed sockets (--tcp-close; over --tcp-established), not refused. */
  tcpClose?: boolean;
  /** A TCP listener's connections not yet accepted are dropped (--skip-in-flight), not refused. */
  skipInFlight?: boolean;
  /** --external mnt[MOUNTPOINT]:KEY: a container's mounts from the host, bound again at restore. */
  externalMounts?: Map<string, string>;
  /** --external tty[RDEV:DEV]: terminals from outside, handed in at restore (keys, resources/tty/external.ts). */
  externalTtys?: ReadonlySet<string>;
  /** The unix sockets' queues are walked (false: a look before the freeze, see queue-walks.ts). */
  peekQueues?: boolean;
}

export { DEFAULT_GHOST_LIMIT };

export interface FileScan {
  /** Every unix socket of the network namespace, by inode. */
  unix: Map<number, UnixDiag>;
  /** The walks of those sockets' queues (none in a look before the freeze). */
  queues: QueueWalks;
  /** The tree's processes (thread group ids). */
  tree: Set<number>;
  /** Socket inodes some task of the tree has open. */
  held: Set<number>;
  extUnixSk: boolean;
  ghostLimit: number;
  fileLocks: boolean;
  tcpEstablished: boolean;
  tcpClose: boolean;
  skipInFlight: boolean;
  externalMounts: Map<string, string>;
  /** Pipes whose other end is held outside the tree, by pipe inode: who holds it, in words. */
  pipePeers: Map<number, string>;
  /** The tree's terminals (tty-scan.ts). */
  terminals: TreeTerminals;
  /**
   * Deleted files the tree holds open or mapped (made again for the restore as ghosts): inode
   * by the path they had. Read on first use.
   */
  deletedFiles(): Map<string, bigint>;
}

/**
 * The unix sockets of the tree's network namespace (the root's: a task in another is refused by
 * resources/ns): sock_diag answers for the namespace its netlink socket was made in.
 */
function treeUnixSockets(root: number): Map<number, UnixDiag> {
  const link = (p: number | 'self') => readlinkSync(`/proc/${p}/ns/net`);
  let theirs: string;
  try {
    theirs = link(root);
  } catch {
    return unixSockets();
  }
  if (theirs === link('self')) return unixSockets();
  const fd = openNetns(root);
  try {
    return withNetns(fd, unixSockets);
  } finally {
    closeFd(fd);
  }
}

export function scanFiles(pids: number[], opts: ScanOptions = {}): FileScan {
  const held = new Set<number>();
  const where = new Map<number, { pid: number; fd: number }>();
  const pipes = new Map<number, { r: boolean; w: boolean }>();
  for (const pid of pids) {
    let fds: string[] = [];
    try {
      fds = readdirSync(`/proc/${pid}/fd`);
    } catch {
      continue; // gone, or a zombie
    }
    for (const fd of fds) {
      try {
        const link = readlinkSync(`/proc/${pid}/fd/${fd}`);
        const pipe = pipeInode(link);
        if (pipe !== null) noteEnd(pipes, pipe, `/proc/${pid}/fd/${fd}`);
        const ino = socketInode(link);
        if (ino !== null) {
          held.add(ino);
          where.set(ino, { pid, fd: Number(fd) });
        }
      } catch {
        /* closed meanwhile */
      }
    }
  }
  const unix = held.size ? treeUnixSockets(pids[0]!) : new Map<number, UnixDiag>();
  const queues = new QueueWalks(opts.peekQueues ?? true);
  for (const ino of inFlight(unix, where, queues)) held.add(ino);
  return {
    queues,
    tree: new Set(pids),
    unix,
    held,
    extUnixSk: opts.extUnixSk ?? false,
    ghostLimit: opts.ghostLimit ?? DEFAULT_GHOST_LIMIT,
    fileLocks: opts.fileLocks ?? false,
    tcpEstablished: opts.tcpEstablished ?? false,
    tcpClose: opts.tcpClose ?? false,
    skipInFlight: opts.skipInFlight ?? false,
    externalMounts: opts.externalMounts ?? new Map(),
    pipePeers: outsidePipeEnds(pipes, new Set(pids)),
    terminals: scanTerminals(pids, opts.shellJob ?? false, opts.externalTtys),
    deletedFiles: lazy(() => heldDeleted(pids)),
  };
}

function lazy<T>(make: () => T): () => T {
  let v: T | undefined;
  return () => (v ??= make());
}

const DELETED = ' (deleted)';

/** Deleted files behind the tree's fds and mappings: inode by former path. */
function heldDeleted(pids: number[]): Map<string, bigint> {
  const out = new Map<string, bigint>();
  const note = (link: string, source: string) => {
    if (!link.endsWith(DELETED)) return;
    try {
      out.set(link.slice(0, -DELETED.length), statSync(source, { bigint: true }).ino);
    } catch {
      /* closed or unmapped meanwhile */
    }
  };
  for (const pid of pids) {
    for (const dir of ['fd', 'map_files']) {
      let names: string[] = [];
      try {
        names = readdirSync(`/proc/${pid}/${dir}`);
      } catch {
        continue;
      }
      for (const n of names) {
        try {
          note(readlinkSync(`/proc/${pid}/${dir}/${n}`), `/proc/${pid}/${dir}/${n}`);
        } catch {
          /* gone meanwhile */
        }
      }
    }
  }
  return out;
}

/** Which end of a pipe an fd is: the /proc fd link's own mode says (r-x read, -wx write). */
function noteEnd(pipes: Map<number, { r: boolean; w: boolean }>, ino: number, link: string): void {
  const mode = lstatSync(link).mode;
  const ends = pipes.get(ino) ?? { r: false, w: false };
  if (mode & 0o400) ends.r = true;
  if (mode & 0o200) ends.w = true;
  pipes.set(ino, ends);
}

/**
 * Pipes the tree holds only one end of, whose other end some process outside the tree holds
 * (a shell pipeline: `job | cat`). Restored alone, the task would write into a pipe nobody reads
 * (EPIPE) or read one nobody writes: restore takes the other side from --inherit-fd. A pipe
 * whose other end is closed everywhere is simply restored so.
 */
function outsidePipeEnds(pipes: Map<number, { r: boolean; w: boolean }>, tree: Set<number>): Map<number, string> {
  const out = new Map<number, string>();
  const half = [...pipes].filter(([, e]) => e.r !== e.w);
  if (!half.length) return out;
  for (const { pid, fd, link } of everyFdLink((pid) => tree.has(pid) || pid === process.pid)) {
    const ino = pipeInode(link);
    const ours = ino === null ? undefined : pipes.get(ino);
    if (!ours || ours.r === ours.w || out.has(ino!)) continue;
    try {
      const mode = lstatSync(`/proc/${pid}/fd/${fd}`).mode;
      const other = ours.r ? (mode & 0o200) !== 0 : (mode & 0o400) !== 0;
      if (other) out.set(ino!, `pipe ${ours.r ? 'from' : 'to'} pid ${pid} (${comm(pid)}), outside the tree`);
    } catch {
      /* closed or gone meanwhile */
    }
  }
  return out;
}

function comm(pid: number): string {
  try {
    return readFileSync(`/proc/${pid}/comm`, 'utf8').trim();
  } catch {
    return '?';
  }
}

/**
 * Unix sockets that are not in any fd table but in flight (SCM_RIGHTS) in a queue of one that
 * is: they belong to the tree too. Found by peeking at the queues (nothing is consumed).
 */
function inFlight(unix: Map<number, UnixDiag>, where: Map<number, { pid: number; fd: number }>, queues: QueueWalks): number[] {
  const out: number[] = [];
  for (const [ino, at] of where) {
    const d = unix.get(ino);
    if (!d || !QueueWalks.mayHold(d)) continue;
    try {
      withOurCopy(at.pid, at.fd, (ours) => {
        for (const m of queues.walk(d, ours, 8 << 20) ?? []) {
          for (const f of m.fds) {
            const st = fstatSync(f);
            if (st.isSocket()) out.push(st.ino);
            closeFd(f);
          }
        }
      });
    } catch {
      /* closed or gone meanwhile: the dump looks again under freeze */
    }
  }
  return out;
}
