// The unix socket kind (UNIXSK, unix_sk_entry): judged from the tree's sock_diag scan (unix.ts),
// dumped through our copy of the task's socket with its queued messages (sk-queues.img, the fds
// in flight in them dumped as files of the tree), and a peer outside the tree (--ext-unix-sk) as
// a record of its own that no fd holds. On restore every socket is made at once by prepare() in
// the tree's network namespace (unix-restore.ts: pairs, names, listeners, connections, queues),
// before any task, so peers find each other whichever task holds which end; open() hands out
// the socket made for the record and release() gives back every one of them.
import { create } from '@bufbuild/protobuf';
import { readFileSync } from 'node:fs';
import { AF, SOCK, TCP_STATE, SCM_RIGHTS, type Ucred } from '../../sys/index.js';
import { parseStatus, statusIds, statusGroups } from '../../proc/index.js';
import { sk_packet_entrySchema, type sk_packet_entry } from '../../image/gen/sk-packet_pb.js';
import { cryo_peer_credSchema } from '../../image/gen/sk-unix_pb.js';
import { UserError } from '../../util/errors.js';
import { hasField } from '../../image/presence.js';
import { blockerAt } from '../../util/blocker.js';
import { attachFilter, filterBlocker } from './sk-filter.js';
import type { AnyFdKind, FdAt, FdDumpContext, FdKind, FdOpenContext, FdPrepareContext, FdSeen, KindImage, KindImages, KindState } from './fd-kind.js';
import type { FownData } from './fown.js';
import { socketInode, withOurCopy } from './our-copy.js';
import type { FileScan } from './scan.js';
import { preparedSockets, socketFamily, unsupportedSocket } from './socket-common.js';
import { expectSkOpts } from './sk-verify.js';
import { describeUnix, dumpUnixSk, externalPeer, unixBlocker, type QueuedData, type UnixSkData } from './unix.js';
import { restoreUnixSockets } from './unix-restore.js';
import { queueCredsBlocker, validateSenders } from './unix-creds.js';
import { QueueWalks } from './queue-walks.js';

/** A message queued in a socket at dump, with the file ids it carries (an sk-queues.img entry). */
interface QueuedAtDump {
  idFor: number;
  data: Buffer;
  rights: number[];
  creds?: Ucred;
  sender?: Buffer;
}

const SK_QUEUES = 'sk-queues.img';

/** Dump state: the messages of every socket, in the order they go into sk-queues.img. */
const queuedAtDump = (state: KindState) => state.memo('unix:queued', () => [] as QueuedAtDump[]);
/** Dump state: the socket inodes that have a record already (a peer outside the tree gets one once). */
const recorded = (state: KindState) => state.memo('unix:recorded', () => new Set<number>());
/** Restore state: sk-queues.img by socket file id, read and checked once. */
const queuesOf = (images: KindImages) => images.memo('unix:queues', () => readQueues(images));
/** Restore state: our fd of every socket prepare() made. */
const made = preparedSockets('unix');
/** Restore state: the queues left to fill once every task exists (unix-restore.ts `later`). */
const laterOf = (images: KindImages) => images.memo('unix:later', () => ({ fill: null as ((send: boolean) => void) | null }));

function readQueues(images: KindImages): Map<number, QueuedData[]> {
  const out = new Map<number, QueuedData[]>();
  for (const e of images.readWithPayloads(SK_QUEUES) ?? []) {
    const p = e.msg as sk_packet_entry;
    const list = out.get(p.idFor) ?? [];
    const rights = p.scm.flatMap((c) => {
      if (c.type !== SCM_RIGHTS) throw new UserError(`${SK_QUEUES}: control message type ${c.type} — not supported`);
      return c.rights;
    });
    const c = hasField(sk_packet_entrySchema, p, 'cryoUcred') ? p.cryoUcred : undefined;
    const sender = hasField(sk_packet_entrySchema, p, 'cryoSender') && p.cryoSender.length ? { sender: Buffer.from(p.cryoSender) } : {};
    list.push({ data: Buffer.from(e.payload.subarray(0, p.length)), rights, ...(c ? { creds: { pid: c.pid, uid: c.uid, gid: c.gid } } : {}), ...sender });
    out.set(p.idFor, list);
  }
  return out;
}

/** A task's effective uid, gid and groups (as cryo's namespaces show them), read once per dump. */
function holderCred(pid: number, state: KindState): { pid: number; uid: number; gid: number; groups: number[] } | null {
  const memo = state.memo('unix:holders', () => new Map<number, ReturnType<typeof holderCred>>());
  if (!memo.has(pid)) {
    let cred = null;
    try {
      const s = parseStatus(readFileSync(`/proc/${pid}/status`, 'utf8'));
      cred = { pid, uid: statusIds(s, 'Uid')[1], gid: statusIds(s, 'Gid')[1], groups: statusGroups(s) };
    } catch {
      /* gone: a zombie holds no socket */
    }
    memo.set(pid, cred);
  }
  return memo.get(pid)!;
}

/** The sock_diag view of the socket behind `f` (null: not in the tree's namespace's scan). */
function diagOf(f: FdSeen, scan: FileScan) {
  return scan.unix.get(socketInode(f.link) ?? -1) ?? null;
}

export const unixKind = {
  name: 'socket' as const,
  type: 'UNIXSK',
  field: 'usk',
  phase: 'table',
  object: true,
  recognise: (link: string, _mode: number | null, at?: FdAt) => socketFamily(link, at) === AF.UNIX,
  describe(f: FdSeen, scan: FileScan): string {
    const d = diagOf(f, scan);
    return d ? describeUnix(d) : unsupportedSocket(AF.UNIX).text;
  },
  blocker(f: FdSeen, scan: FileScan) {
    const d = diagOf(f, scan);
    // Not among the namespace's unix sockets: what the kernel shows of it cannot be read.
    const cause = d
      ? (unixBlocker(d, scan.unix, scan.held, scan.extUnixSk, scan.queues.unsure) ??
        withOurCopy(f.pid, f.fd, (ours) => (QueueWalks.mayHold(d) ? queueCredsBlocker(ours, d, scan.tree, scan.queues) : null) ?? filterBlocker(ours)))
      : unsupportedSocket(AF.UNIX).cause;
    return cause && blockerAt({ pid: f.pid, fd: f.fd }, cause);
  },
  dump(f: FdSeen, id: number, flags: number, fown: FownData, ctx: FdDumpContext): UnixSkData {
    const { scan } = ctx;
    const d = diagOf(f, scan)!;
    recorded(ctx).add(d.ino);
    const entry = withOurCopy(f.pid, f.fd, (ours) => {
      const { entry, queue } = dumpUnixSk(ours, d, scan.unix, id, flags, fown, scan.queues);
      // Fds in flight are dumped as files of ours, kept open until the dump ends (kcmp compares
      // later fds with them); a description also open in a task shares its entry.
      for (const m of queue) for (const fd of m.fds) ctx.keepOpen(fd);
      for (const m of queue) {
        queuedAtDump(ctx).push({
          idFor: id, data: m.data, rights: m.fds.map((fd) => ctx.dumpOurFd(fd)),
          ...(m.creds ? { creds: m.creds } : {}), ...(m.from?.length ? { sender: m.from.subarray(2) } : {}),
        });
      }
      return entry;
    });
    const peer = d.peer ? scan.unix.get(d.peer) : undefined;
    if (peer && !scan.held.has(peer.ino) && !recorded(ctx).has(peer.ino)) {
      recorded(ctx).add(peer.ino);
      ctx.addRecord(unixKind as AnyFdKind, (peerId) => externalPeer(peer, peerId, fown));
    }
    // The ids a connect made again at restore runs under (step 3 of restoreUnixSockets).
    const holder = d.type !== SOCK.DGRAM && d.state !== TCP_STATE.LISTEN ? holderCred(f.pid, ctx) : null;
    return { ...entry, nsId: ctx.netNsId, ...(holder ? { cryoHolderCred: create(cryo_peer_credSchema, holder) } : {}) };
  },
  images(_records: UnixSkData[], state: KindState): KindImage[] {
    const queued = queuedAtDump(state);
    if (!queued.length) return [];
    const entries = queued.map((q) => ({
      msg: create(sk_packet_entrySchema, {
        idFor: q.idFor, length: q.data.length, scm: q.rights.length ? [{ type: SCM_RIGHTS, rights: q.rights }] : [],
        ...(q.creds ? { cryoUcred: q.creds } : {}), ...(q.sender ? { cryoSender: q.sender } : {}),
      }),
      payload: q.data,
    }));
    return [{ file: SK_QUEUES, kind: 'SK_QUEUES', entries }];
  },
  read: (entry: unknown) => entry as UnixSkData,
  validate(records: UnixSkData[], images: KindImages): void {
    const ids = new Set(records.map((r) => r.id));
    for (const [id, q] of queuesOf(images)) {
      if (!ids.has(id)) {
        throw new UserError(`${SK_QUEUES}: messages queued on socket ${id}, ${images.isFile(id) ? 'not a unix socket (only theirs are restored)' : 'missing from files.img'}`);
      }
      for (const m of q) for (const r of m.rights) if (!images.isFile(r)) throw new UserError(`${SK_QUEUES}: a message on socket ${id} carries file id ${r}, missing from files.img`);
    }
    validateSenders(queuesOf(images), images);
  },
  prepare(records: UnixSkData[], ctx: FdPrepareContext): void {
    if (!records.length) return;
    const { fds, later } = ctx.inNetns(() => restoreUnixSockets(records, queuesOf(ctx.images), (id) => ctx.openFile(id, 'a file in flight in a socket')));
    for (const [id, fd] of fds) made.made(ctx.images).set(id, fd);
    made.register(ctx);
    // In the tree's network namespace again: a sender of ours finds an abstract name there.
    laterOf(ctx.images).fill = later && ((send) => (send ? ctx.inNetns(() => later(true)) : later(false)));
  },
  open: (rec: UnixSkData, ctx: FdOpenContext) => made.open(rec, ctx),
  // Queues whose messages name their senders, once every sender exists: the first record's
  // call fills them all. Each socket's filter only after that.
  afterTasks(rec: UnixSkData, ourFd: number, images: KindImages): void {
    const later = laterOf(images);
    const fill = later.fill;
    later.fill = null;
    fill?.(true);
    attachFilter(ourFd, rec.opts, `unix socket (file id ${rec.id})`);
  },
  release(images: KindImages): number[] {
    const later = laterOf(images);
    const fill = later.fill;
    later.fill = null;
    fill?.(false);
    return made.release(images);
  },
  expect: (rec: UnixSkData, s, key) => expectSkOpts(s, key, rec.opts),
} satisfies FdKind<UnixSkData>;
