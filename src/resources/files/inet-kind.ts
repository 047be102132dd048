// The inet socket kind (INETSK, inet_sk_entry): IPv4 and IPv6 TCP listeners and unconnected
// sockets, UDP sockets with their queued datagrams and multicast groups, and TCP connections
// (in repair mode with --tcp-established, closed with --tcp-close). inet.ts judges, dumps and
// makes one socket; resources/net/ holds the rest (tcp-dump.ts and tcp-repair.ts the connections
// and their tcp-stream images, tcp-restore.ts their network lock on restore, udp-queue.ts,
// mcast.ts). On restore prepare() makes every socket at once in the tree's network namespace,
// the connections through the restore's network lock (FdPrepareContext.tcp), before any task.
import { AF, SOCK, SOL, SO, getsockoptInt } from '../../sys/index.js';
import { UnsupportedError, UserError } from '../../util/errors.js';
import { blockerAt } from '../../util/blocker.js';
import { dumpMemberships, membershipText, type McastRecord } from '../net/mcast.js';
import { encodeTcpStreamImage, tcpStreamImageName } from '../net/tcp-repair.js';
import { readTcpConnections, tcpImagesOf } from '../net/tcp-restore.js';
import type { FdAt, FdDumpContext, FdKind, FdOpenContext, FdPrepareContext, FdSeen, KindImage, KindImages } from './fd-kind.js';
import type { FownData } from './fown.js';
import { describeInet, dumpInetSk, inetBlocker, inspectInet, isTcpConnection, restoreInetSk, type InetInfo, type InetSkData, type TcpPolicy } from './inet.js';
import { socketInode, withOurCopy } from './our-copy.js';
import type { FileScan } from './scan.js';
import { preparedSockets, socketFamily } from './socket-common.js';
import { expectSkOpts } from './sk-verify.js';
import { attachFilter, filterBlocker } from './sk-filter.js';

/** Restore state: our fd of every socket prepare() made. */
const made = preparedSockets('inet');

/** The socket behind the task's fd `f`, through our copy `ours` of it. */
function inspect(f: FdSeen, ours: number): InetInfo {
  return inspectInet(ours, getsockoptInt(ours, SOL.SOCKET, SO.DOMAIN), f.pid);
}

/** How the socket is dumped under the user's policy, for check's words. */
function how(i: InetInfo, tcp: TcpPolicy): string {
  if (i.pending && tcp.skipInFlight) return ` (${i.pending} not accepted yet: dropped, --skip-in-flight)`;
  if (!isTcpConnection(i)) return '';
  if (tcp.tcpClose) return ' (restored closed: --tcp-close)';
  return tcp.tcpEstablished ? ' (dumped in TCP repair mode: --tcp-established)' : '';
}

export const inetKind = {
  name: 'socket' as const,
  type: 'INETSK',
  field: 'isk',
  phase: 'table',
  object: true,
  recognise(link: string, _mode: number | null, at?: FdAt): boolean {
    const family = socketFamily(link, at);
    return family === AF.INET || family === AF.INET6;
  },
  describe: (f: FdSeen, scan: FileScan): string =>
    withOurCopy(f.pid, f.fd, (ours) => {
      const i = inspect(f, ours);
      return describeInet(i) + how(i, scan);
    }),
  blocker(f: FdSeen, scan: FileScan) {
    const cause = withOurCopy(f.pid, f.fd, (ours) => inetBlocker(inspect(f, ours), scan) ?? filterBlocker(ours));
    return cause && blockerAt({ pid: f.pid, fd: f.fd }, cause);
  },
  dump(f: FdSeen, id: number, flags: number, fown: FownData, ctx: FdDumpContext): InetSkData {
    const ino = socketInode(f.link)!;
    return withOurCopy(f.pid, f.fd, (ours) => {
      const inet = inspect(f, ours);
      // Judged again on the copy the record is made from: the blocker looked through another.
      const cause = inetBlocker(inet, ctx.scan);
      if (cause) throw new UnsupportedError([blockerAt({ pid: f.pid, fd: f.fd }, cause)]);
      if (isTcpConnection(inet) && !ctx.scan.tcpClose) {
        // With --tcp-established (the blocker said so): its queues and sequence numbers too.
        // With --tcp-close only its inet_sk_entry, below: the restore makes it closed.
        if (!ctx.tcp) throw new Error(`pid ${f.pid} fd ${f.fd}: a TCP connection, but the dump holds no network lock for it`);
        const rec = ctx.tcp.dump(ours, inet, { id, ino, flags, fown });
        return { ...rec.sk, nsId: ctx.netNsId };
      }
      const { entry, warning } = dumpInetSk(ours, inet, id, ino, flags, fown);
      if (entry.type !== SOCK.STREAM) {
        const groups = dumpMemberships(f.pid, ours, entry.family);
        if (groups.length) entry.cryoMcast = groups;
      }
      if (warning) ctx.warn(`pid ${f.pid} fd ${f.fd}: ${warning}`);
      if (inet.pending) ctx.warn(`pid ${f.pid} fd ${f.fd}: ${inet.pending} connection(s) not yet accepted are dropped (--skip-in-flight): the listener is restored with an empty accept queue`);
      return { ...entry, nsId: ctx.netNsId };
    });
  },
  // CRIU's tcp-stream-<socket inode, hex>.img: each connection's state and queue bytes.
  images: (_records: InetSkData[], state: FdDumpContext): KindImage[] =>
    (state.tcp?.connections ?? []).map((c) => ({ file: tcpStreamImageName(c.rec.sk.ino), raw: encodeTcpStreamImage(c.rec) })),
  read: (entry: unknown) => entry as InetSkData,
  validate(records: InetSkData[], images: KindImages): void {
    try {
      readTcpConnections(images, records, tcpImagesOf(images));
    } catch (e) {
      throw new UserError((e as Error).message);
    }
  },
  prepare(records: InetSkData[], ctx: FdPrepareContext): void {
    if (!records.length) return;
    const { connections } = tcpImagesOf(ctx.images);
    const fds = made.made(ctx.images);
    // One by one into the state: after a failure release() hands back those made so far.
    ctx.inNetns(() => {
      for (const e of records) {
        const conn = connections.get(e.id);
        if (conn && !ctx.tcp) throw new Error(`TCP connection (file id ${e.id}) without the restore's network lock`);
        fds.set(e.id, conn ? ctx.tcp!.create(conn) : restoreInetSk(e));
      }
    });
    made.register(ctx);
  },
  open: (rec: InetSkData, ctx: FdOpenContext) => made.open(rec, ctx),
  // Its queue (datagrams sent to it again, or a connection's in repair mode) is whole by now.
  afterTasks: (rec: InetSkData, ourFd: number) => attachFilter(ourFd, rec.opts, `socket (file id ${rec.id})`),
  release: (images: KindImages) => made.release(images),
  expect(rec: InetSkData, s, key) {
    const groups = (rec.cryoMcast ?? []) as McastRecord[];
    if (groups.length) s.set(`${key} multicast`, { set: groups.map((m) => membershipText(rec.family, m.ifname, m.group, m.mode, m.sources)) });
    expectSkOpts(s, key, rec.opts);
  },
} satisfies FdKind<InetSkData>;
