// Inet and netlink sockets (unix sockets are a registered kind, unix-kind.ts): what one is in
// words, whether it can be dumped, and its dump into the files image, inspected through our own
// copy of the task's socket. A family no module takes is refused (socket-family.ts).
import { AF, SOL, SO, SOCK, getsockoptInt } from '../../sys/index.js';
import { unsupportedSocket } from './socket-common.js';
import { dumpMemberships } from '../net/mcast.js';
import { withOurCopy } from './our-copy.js';
import type { FileScan } from './scan.js';
import { UnsupportedError } from '../../util/errors.js';
import { blockerAt, type Blocker, type BlockerCause } from '../../util/blocker.js';
import { inspectInet, describeInet, inetBlocker, dumpInetSk, isTcpConnection, type InetInfo, type TcpPolicy } from './inet.js';
import { inspectNetlink, describeNetlink, netlinkBlocker, dumpNetlinkSk, type NetlinkInfo } from './netlink.js';
import type { FileTable } from './table.js';
import type { FownData } from './fown.js';

// check.ts and others name them through this module.
export { socketInode, withOurCopy } from './our-copy.js';

/** The socket in words, and why it cannot be dumped (null if it can). */
export function judgeSocket(pid: number, fd: number, scan: FileScan): { text: string; cause: BlockerCause | null } {
  return withOurCopy(pid, fd, (ours) => judgeCopy(pid, ours, scan));
}

/** Why the socket behind the task's fd cannot be dumped (null if it can). */
export function socketBlocker(pid: number, fd: number, scan: FileScan): Blocker | null {
  const { cause } = judgeSocket(pid, fd, scan);
  return cause && blockerAt({ pid, fd }, cause);
}

/** An inet or netlink socket (or one of a family no kind takes), judged through our copy `ours` of it; `inet` when it is one. */
function judgeCopy(pid: number, ours: number, tcp: TcpPolicy): { text: string; cause: BlockerCause | null; inet?: InetInfo; netlink?: NetlinkInfo } {
  const family = getsockoptInt(ours, SOL.SOCKET, SO.DOMAIN);
  if (family === AF.INET || family === AF.INET6) {
    const inet = inspectInet(ours, family, pid);
    const how = inet.pending && tcp.skipInFlight ? ` (${inet.pending} not accepted yet: dropped, --skip-in-flight)`
      : !isTcpConnection(inet) ? '' : tcp.tcpClose ? ' (restored closed: --tcp-close)' : tcp.tcpEstablished ? ' (dumped in TCP repair mode: --tcp-established)' : '';
    return { text: describeInet(inet) + how, cause: inetBlocker(inet, tcp), inet };
  }
  if (family === AF.NETLINK) {
    const netlink = inspectNetlink(ours);
    return { text: describeNetlink(netlink), cause: netlinkBlocker(netlink), netlink };
  }
  return unsupportedSocket(family);
}

/**
 * Adds the socket behind the task's fd to the files image (refusing it as judgeSocket would);
 * returns its file id and kind. One copy of the task's socket serves the check and the dump.
 */
export function dumpSocket(pid: number, fd: number, ino: number, flags: number, fown: FownData, files: FileTable): { id: number; type: 'INETSK' | 'NETLINKSK' } {
  const { scan } = files;
  const refuse = (cause: BlockerCause | null) => {
    if (cause) throw new UnsupportedError([blockerAt({ pid, fd }, cause)]);
  };
  const id = files.entries.length + 1;
  return withOurCopy(pid, fd, (ours) => {
    const judged = judgeCopy(pid, ours, scan);
    refuse(judged.cause);
    if (judged.netlink) {
      files.entries.push({ type: 'NETLINKSK', id, nlsk: { ...dumpNetlinkSk(ours, judged.netlink, id, ino, flags, fown), nsId: files.netNsId } });
      return { id, type: 'NETLINKSK' as const };
    }
    if (isTcpConnection(judged.inet!) && !scan.tcpClose) {
      // With --tcp-established (the blocker said so): its queues and sequence numbers too.
      // With --tcp-close only its inet_sk_entry, below: the restore makes it closed.
      if (!files.tcp) throw new Error(`pid ${pid} fd ${fd}: a TCP connection, but the dump holds no network lock for it`);
      const rec = files.tcp.dump(ours, judged.inet!, { id, ino, flags, fown });
      files.entries.push({ type: 'INETSK', id, isk: { ...rec.sk, nsId: files.netNsId } });
      return { id, type: 'INETSK' as const };
    }
    const { entry, warning } = dumpInetSk(ours, judged.inet!, id, ino, flags, fown);
    if (entry.type !== SOCK.STREAM) {
      const groups = dumpMemberships(pid, ours, entry.family);
      if (groups.length) entry.cryoMcast = groups;
    }
    files.entries.push({ type: 'INETSK', id, isk: { ...entry, nsId: files.netNsId } });
    if (warning) files.warnings.push(`pid ${pid} fd ${fd}: ${warning}`);
    if (judged.inet!.pending) files.warnings.push(`pid ${pid} fd ${fd}: ${judged.inet!.pending} connection(s) not yet accepted are dropped (--skip-in-flight): the listener is restored with an empty accept queue`);
    return { id, type: 'INETSK' as const };
  });
}
