// The dump side of TCP connections (--tcp-established), around the mechanics of tcp-repair.ts
// and netlock.ts. Right after the freeze, the 4-tuple of every connection the tree holds is
// locked (no packet reaches either end); then the files dump hands each connection's socket to
// dump() (our copy of it: it is switched to repair mode, read, and a copy is kept). The dump ends
// one of two ways: release() (--leave-running, and every failure or interruption) takes each
// socket out of repair mode and removes the lock, so the connections go on where they stood;
// keepForRestore() (the tasks were killed) closes our copies, silently since they are in repair
// mode, and keeps the lock for the restore (its name goes into inventory.img).
import { readdirSync, readlinkSync } from 'node:fs';
import { AF, SOL, SO, getsockoptInt, sysTry, closeFd, F } from '../../sys/index.js';
import { socketInode, withOurCopy } from '../files/our-copy.js';
import { inspectInet, isTcpConnection, type InetInfo } from '../files/inet.js';
import type { FileScan } from '../files/scan.js';
import type { FownData } from '../files/fown.js';
import { dumpTcpConnection, releaseRepair, tcpStreamImageName, type TcpConnectionRecord } from './tcp-repair.js';
import { lockNetwork, sweepLeftovers, type NetworkLock, type NetworkLockMode, type TcpTuple } from './netlock.js';
import { TcpGuard } from './tcp-guard.js';

/** CRIU's values of inventory_entry.network_lock_method (its enum NETWORK_LOCK_METHOD). */
export const LOCK_METHOD: Record<NetworkLockMode, number> = { iptables: 0, nftables: 1, skip: 2 };

/** One connection dumped: its record and our copy of the socket, in repair mode. */
export interface DumpedConnection {
  rec: TcpConnectionRecord;
  fd: number;
}

/** The TCP connections (not listeners, not UDP) among the tree's fds, as the lock names them. */
export function treeConnections(pids: number[], scan: FileScan): { pid: number; fd: number; ino: number; tuple: TcpTuple }[] {
  const out: { pid: number; fd: number; ino: number; tuple: TcpTuple }[] = [];
  const seen = new Set<number>();
  for (const pid of pids) {
    let fds: string[];
    try {
      fds = readdirSync(`/proc/${pid}/fd`);
    } catch {
      continue; // a zombie
    }
    for (const name of fds) {
      const fd = Number(name);
      // Before the freeze (the guard's start) the task may close an fd while we look: skip it.
      // Under the freeze nothing closes, and the dump itself reads every fd again.
      let ino: number | null;
      try {
        ino = socketInode(readlinkSync(`/proc/${pid}/fd/${fd}`));
      } catch {
        continue;
      }
      if (ino === null || scan.unix.has(ino) || seen.has(ino)) continue;
      seen.add(ino);
      let info: InetInfo | null;
      try {
        info = withOurCopy(pid, fd, (ours): InetInfo | null => {
          const family = getsockoptInt(ours, SOL.SOCKET, SO.DOMAIN);
          return family === AF.INET || family === AF.INET6 ? inspectInet(ours, family, pid) : null;
        });
      } catch {
        continue;
      }
      if (info && info.dst && isTcpConnection(info)) out.push({ pid, fd, ino, tuple: { src: info.src, dst: info.dst } });
    }
  }
  return out;
}

export class TcpDump {
  readonly connections: DumpedConnection[] = [];
  private lock: NetworkLock | null = null;
  private guard: TcpGuard | null = null;
  /** The tcp-stream images of the connections seen before the freeze (the images to reserve). */
  expectedImages: string[] = [];

  private constructor(readonly mode: NetworkLockMode, private readonly tree: number[]) {}

  /**
   * Before the freeze: removes the locks of cryo runs that died (SIGKILL) and starts the guard
   * that undoes this dump's lock and repair mode should this process die too (tcp-guard.ts).
   */
  static start(mode: NetworkLockMode, tree: number[], scan: FileScan): TcpDump {
    sweepLeftovers();
    const d = new TcpDump(mode, tree);
    // Started now (a process takes ~50 ms to start), while nothing is frozen yet.
    const seen = treeConnections(tree, scan);
    if (seen.length) d.guard = TcpGuard.start(tree);
    d.expectedImages = seen.map((c) => tcpStreamImageName(c.ino));
    return d;
  }

  /** Name and method of the lock, for inventory.img (a kill-dump's restore adopts it). */
  get lockInfo(): { method: number; name: string } | null {
    return this.lock && this.lock.name ? { method: LOCK_METHOD[this.lock.mode], name: this.lock.name } : null;
  }

  /** After the freeze: no packet of the tree's connections passes from here on. */
  lockTree(pids: number[], scan: FileScan, heldForRestore: boolean): number {
    const conns = treeConnections(pids, scan);
    if (!conns.length) return 0;
    // The guard holds copies before any socket enters repair mode, and knows the lock's name
    // before it exists: whenever this process dies, it can undo both.
    this.guard ??= TcpGuard.start(this.tree);
    this.guard.take(conns.map((c) => ({ pid: c.pid, fd: c.fd })));
    this.lock = lockNetwork(this.mode, conns.map((c) => c.tuple), { heldForRestore, onName: (name) => this.guard?.lockName(this.mode, name) });
    return conns.length;
  }

  /** One connection, from our copy `ours` of its socket (it stays in repair mode; a copy is kept). */
  dump(ours: number, info: InetInfo, ids: { id: number; ino: number; flags: number; fown: FownData }): TcpConnectionRecord {
    if (!this.lock) throw new Error('a TCP connection appeared after the network was locked');
    const rec = dumpTcpConnection(ours, info.family, ids, info);
    const keep = sysTry('fcntl', [ours, F.DUPFD_CLOEXEC, 0]);
    if (keep.ret < 0) {
      releaseRepair(ours, rec.sk.opts.reuseaddr ?? false);
      throw new Error(`cannot keep a copy of a TCP socket: errno ${keep.errno}`);
    }
    this.connections.push({ rec, fd: keep.ret });
    return rec;
  }

  /** The images are complete (inventory.img written): the guard then keeps a dead tree's lock. */
  complete(): void {
    this.guard?.complete();
  }

  /**
   * The connections go on: every socket out of repair mode, then the lock removed. Never
   * throws (it runs on failure paths): what could not be undone is returned, to be logged.
   */
  release(): string[] {
    const errors: string[] = [];
    for (const c of this.connections.splice(0)) {
      const errno = releaseRepair(c.fd, c.rec.sk.opts.reuseaddr ?? false);
      if (errno) errors.push(`TCP socket inode ${c.rec.sk.ino}: cannot leave repair mode (errno ${errno})`);
      closeFd(c.fd);
    }
    try {
      this.lock?.release();
    } catch (e) {
      errors.push((e as Error).message);
    }
    this.lock = null;
    this.guard?.done();
    this.guard = null;
    return errors;
  }

  /**
   * The tasks are dead: our copies were the last references, and closing them in repair mode
   * sends nothing (no FIN, no RST). The lock stays, for the restore to adopt and remove.
   */
  keepForRestore(): void {
    for (const c of this.connections.splice(0)) closeFd(c.fd);
    this.lock?.keep();
    this.lock = null;
    this.guard?.done();
    this.guard = null;
  }
}
