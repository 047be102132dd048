// The restore side of TCP connections (--tcp-established): each inet_sk_entry of a connection
// with its tcp-stream-<inode hex>.img read back; the network lock, the dump's own (a kill-dump
// keeps it, inventory.img names it) or a new one when that is gone (a reboot); every socket made
// in repair mode where the restore makes the other inet sockets, before any task; repair mode
// left just before the tasks resume; the lock removed once they run. After a failure the sockets
// are put back in repair mode before they are closed, so that neither a FIN nor a RST goes out.
import { isFieldSet } from '@bufbuild/protobuf';
import { inventory_entrySchema, type inventory_entry } from '../../image/gen/inventory_pb.js';
import { TCP_REPAIR_MODE, trySetTcpRepair } from '../../sys/index.js';
import { isTcpConnection, type InetSkData } from '../files/inet.js';
import { createTcpConnection, decodeTcpStreamImage, leaveRepair, recordEnds, tcpStreamImageName, type TcpConnectionRecord } from './tcp-repair.js';
import { adoptLock, lockExists, lockNetwork, sweepLeftovers, type NetworkLock, type NetworkLockMode } from './netlock.js';
import { LOCK_METHOD } from './tcp-dump.js';

/** The images' TCP connections, as the inet kind's validate() read them (restore state). */
export interface TcpImages {
  /** The connections to restore in repair mode, by file id. */
  connections: Map<number, TcpConnectionRecord>;
  /** How many come back closed instead (restore --tcp-close). */
  closed: number;
}

/** The restore's TCP connections, kept in its kind state (`memo`: KindImages). */
export function tcpImagesOf(state: { memo<T>(key: string, make: () => T): T }): TcpImages {
  return state.memo('tcp:images', () => ({ connections: new Map(), closed: 0 }));
}

/**
 * The connections of the images to restore in repair mode, by file id (a socket entry whose
 * state is a connection's), into `out`. With `tcpClose` (restore --tcp-close) none: files/inet.ts
 * makes every one a closed socket, whatever the dump saved. Images dumped with --tcp-close hold
 * no stream to restore, and need that flag (as CRIU's restore does).
 */
export function readTcpConnections(
  images: { readRaw(name: string): Uint8Array | undefined; inventory: inventory_entry; tcpClose: boolean }, inet: InetSkData[], out: TcpImages,
): void {
  if (images.tcpClose) {
    out.closed = inet.filter((sk) => isTcpConnection(sk)).length;
    return;
  }
  const inv = images.inventory;
  if (isFieldSet(inv, inventory_entrySchema.field.tcpClose) && inv.tcpClose) {
    const n = inet.filter((sk) => isTcpConnection(sk)).length;
    throw new Error(`the images were dumped with --tcp-close: restore with --tcp-close (their ${n} TCP connection(s) come back closed)`);
  }
  for (const sk of inet) {
    if (!isTcpConnection(sk)) continue;
    const name = tcpStreamImageName(sk.ino);
    const raw = images.readRaw(name);
    if (!raw) throw new Error(`files.img: TCP connection (file id ${sk.id}, socket inode ${sk.ino}) without its ${name}`);
    const s = decodeTcpStreamImage(raw, name);
    out.connections.set(sk.id, { sk, stream: s.stream as unknown as TcpConnectionRecord['stream'], inq: s.inq, outq: s.outq });
  }
}

/** The lock a kill-dump kept, as inventory.img names it (CRIU's fields), if it names one. */
function keptLock(inv: inventory_entry): { mode: 'nftables' | 'iptables'; name: string } | null {
  if (!isFieldSet(inv, inventory_entrySchema.field.dumpCriuRunId) || !inv.dumpCriuRunId) return null;
  const mode = inv.networkLockMethod === LOCK_METHOD.iptables ? 'iptables' : inv.networkLockMethod === LOCK_METHOD.nftables ? 'nftables' : null;
  return mode && /^cryoh-/i.test(inv.dumpCriuRunId) ? { mode, name: inv.dumpCriuRunId } : null;
}

export class TcpRestore {
  /** Our fd of each connection made so far, and whether it has left repair mode. */
  private readonly made: { fd: number; rec: TcpConnectionRecord; running: boolean }[] = [];

  private constructor(private lock: NetworkLock | null, readonly adopted: boolean) {}

  /**
   * Holds the network for the connections until the tree runs: adopts the dump's lock when it is
   * still there, else makes one (`mode`; skip: none).
   */
  static start(conns: Map<number, TcpConnectionRecord>, inv: inventory_entry, mode: NetworkLockMode): TcpRestore {
    sweepLeftovers();
    const kept = keptLock(inv);
    if (kept && lockExists(kept.mode, kept.name)) return new TcpRestore(adoptLock(kept.mode, kept.name), true);
    if (!conns.size) return new TcpRestore(null, false);
    const tuples = [...conns.values()].map((c) => recordEnds(c.sk));
    return new TcpRestore(lockNetwork(mode, tuples), false);
  }

  get lockName(): string {
    return this.lock?.name ?? '';
  }

  /** The connection's socket, in repair mode (nothing goes out before the tasks resume). */
  create(rec: TcpConnectionRecord): number {
    const fd = createTcpConnection(rec);
    this.made.push({ fd, rec, running: false });
    return fd;
  }

  /** Just before the tasks resume: every connection runs again (the lock still holds). */
  leaveRepair(): void {
    for (const m of this.made) {
      leaveRepair(m.fd, m.rec);
      m.running = true;
    }
  }

  /**
   * After a failure, before the sockets are closed: back into repair mode, where closing one
   * sends nothing (the peer's connection is not reset by a restore that did not happen).
   */
  abort(): void {
    for (const m of this.made) if (m.running) trySetTcpRepair(m.fd, TCP_REPAIR_MODE.ON);
  }

  /** Once the tree runs (or after a failure, once the sockets are closed): the lock goes. */
  releaseLock(): void {
    const l = this.lock;
    this.lock = null;
    l?.release();
  }
}
