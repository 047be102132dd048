// The netlink socket kind (NETLINKSK, netlink_sk_entry): netlink.ts judges, dumps and makes one
// socket (an empty one only: a queued reply or notification from the kernel is refused). On
// restore prepare() makes every one at once in the tree's network namespace, before any task,
// bound to the same port id and groups.
import { AF } from '../../sys/index.js';
import { blockerAt } from '../../util/blocker.js';
import type { FdAt, FdDumpContext, FdKind, FdOpenContext, FdPrepareContext, FdSeen, KindImages } from './fd-kind.js';
import type { FownData } from './fown.js';
import { describeNetlink, dumpNetlinkSk, inspectNetlink, netlinkBlocker, restoreNetlinkSk, type NetlinkSkData } from './netlink.js';
import { socketInode, withOurCopy } from './our-copy.js';
import { preparedSockets, socketFamily } from './socket-common.js';
import { expectSkOpts } from './sk-verify.js';
import { attachFilter, filterBlocker } from './sk-filter.js';
import { UnsupportedError } from '../../util/errors.js';

/** Restore state: our fd of every socket prepare() made. */
const made = preparedSockets('netlink');

export const netlinkKind = {
  name: 'socket' as const,
  type: 'NETLINKSK',
  field: 'nlsk',
  phase: 'table',
  object: true,
  recognise: (link: string, _mode: number | null, at?: FdAt) => socketFamily(link, at) === AF.NETLINK,
  describe: (f: FdSeen) => withOurCopy(f.pid, f.fd, (ours) => describeNetlink(inspectNetlink(ours))),
  blocker(f: FdSeen) {
    const cause = withOurCopy(f.pid, f.fd, (ours) => netlinkBlocker(inspectNetlink(ours)) ?? filterBlocker(ours));
    return cause && blockerAt({ pid: f.pid, fd: f.fd }, cause);
  },
  dump(f: FdSeen, id: number, flags: number, fown: FownData, ctx: FdDumpContext): NetlinkSkData {
    return withOurCopy(f.pid, f.fd, (ours) => {
      const n = inspectNetlink(ours);
      // Judged again on the copy the record is made from: a message may have come meanwhile.
      const cause = netlinkBlocker(n);
      if (cause) throw new UnsupportedError([blockerAt({ pid: f.pid, fd: f.fd }, cause)]);
      return { ...dumpNetlinkSk(ours, n, id, socketInode(f.link)!, flags, fown), nsId: ctx.netNsId };
    });
  },
  read: (entry: unknown) => entry as NetlinkSkData,
  prepare(records: NetlinkSkData[], ctx: FdPrepareContext): void {
    if (!records.length) return;
    const fds = made.made(ctx.images);
    ctx.inNetns(() => {
      for (const e of records) fds.set(e.id, restoreNetlinkSk(e));
    });
    made.register(ctx);
  },
  open: (rec: NetlinkSkData, ctx: FdOpenContext) => made.open(rec, ctx),
  afterTasks: (rec: NetlinkSkData, ourFd: number) => attachFilter(ourFd, rec.opts, `netlink socket (file id ${rec.id})`),
  release: (images: KindImages) => made.release(images),
  expect: (rec: NetlinkSkData, s, key) => expectSkOpts(s, key, rec.opts),
} satisfies FdKind<NetlinkSkData>;
