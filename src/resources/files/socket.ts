// Netlink sockets (unix and inet sockets are registered kinds, unix-kind.ts and inet-kind.ts):
// what one is in words, whether it can be dumped, and its dump into the files image, inspected
// through our own copy of the task's socket. A family no module takes is refused (socket-common.ts).
import { AF, SOL, SO, getsockoptInt } from '../../sys/index.js';
import { unsupportedSocket } from './socket-common.js';
import { withOurCopy } from './our-copy.js';
import { UnsupportedError } from '../../util/errors.js';
import { blockerAt, type Blocker, type BlockerCause } from '../../util/blocker.js';
import { inspectNetlink, describeNetlink, netlinkBlocker, dumpNetlinkSk, type NetlinkInfo } from './netlink.js';
import type { FileTable } from './table.js';
import type { FownData } from './fown.js';

/** The socket in words, and why it cannot be dumped (null if it can). */
export function judgeSocket(pid: number, fd: number): { text: string; cause: BlockerCause | null } {
  return withOurCopy(pid, fd, (ours) => judgeCopy(ours));
}

/** Why the socket behind the task's fd cannot be dumped (null if it can). */
export function socketBlocker(pid: number, fd: number): Blocker | null {
  const { cause } = judgeSocket(pid, fd);
  return cause && blockerAt({ pid, fd }, cause);
}

/** A netlink socket (or one of a family no kind takes), judged through our copy `ours` of it. */
function judgeCopy(ours: number): { text: string; cause: BlockerCause | null; netlink?: NetlinkInfo } {
  const family = getsockoptInt(ours, SOL.SOCKET, SO.DOMAIN);
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
export function dumpSocket(pid: number, fd: number, ino: number, flags: number, fown: FownData, files: FileTable): { id: number; type: 'NETLINKSK' } {
  const id = files.entries.length + 1;
  return withOurCopy(pid, fd, (ours) => {
    const judged = judgeCopy(ours);
    if (judged.cause) throw new UnsupportedError([blockerAt({ pid, fd }, judged.cause)]);
    files.entries.push({ type: 'NETLINKSK', id, nlsk: { ...dumpNetlinkSk(ours, judged.netlink!, id, ino, flags, fown), nsId: files.netNsId } });
    return { id, type: 'NETLINKSK' as const };
  });
}
