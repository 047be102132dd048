// POSIX message queues (the kind 'mqueue'): an fd of mq_open, a regular file of the mqueue
// filesystem whose /proc link is the queue's name (/NAME). CRIU has no image of them: each fd is
// cryo's CRYO_MQUEUE entry of files.img (flags, owner) pointing at its queue, and each queue is
// one entry of cryo-mqueue.img (name, attributes, owner, mode, messages), saved once by inode
// however many fds and tasks hold it.
//
// Messages have no peek: the dump receives every one (highest priority first, oldest first
// within one) and sends them all back at once in the same order with the same priorities, while
// the tree is frozen, so a --leave-running or failed dump leaves the queue as it was (the tty
// kind does the same with the bytes queued in a terminal; a SIGKILL of cryo between the two loses
// them). It does so on a description of its own, opened read-write from the /proc link: the
// task's may be write-only, and its O_NONBLOCK does not matter (zero timeouts, sys/mqueue.ts).
//
// Refused before anything is touched: a queue with a notification registered (mq_notify names a
// process and a signal or thread the restore cannot make again), an unlinked queue (it cannot be
// opened by name again) and a queue of another IPC namespace than cryo's (the restore makes it
// in cryo's). On restore, prepare() creates each queue by name (O_EXCL: one of that name already
// there is refused, not reused) with its attributes, owner, mode and messages; open() opens it by
// name with the fd's flags; unmake() removes the queues it made when the restore failed.
import { closeSync, fstatSync, openSync, readFileSync, readlinkSync, statSync } from 'node:fs';
import { create } from '@bufbuild/protobuf';
import { cryo_mqueue_entrySchema, type cryo_mqueue_entry, type cryo_mqueue_file_entry } from '../../image/gen/cryo-mqueue_pb.js';
import { sys, O, E, SysError, FS_MAGIC, filesystemType, mqGetattr, mqOpen, mqReceiveNow, mqSendNow, mqUnlink, S_IF } from '../../sys/index.js';
import { UserError } from '../../util/errors.js';
import type { Blocker } from '../../util/blocker.js';
import type { FownData } from './fown.js';
import type { FdAt, FdKind, FdSeen, FdDumpContext, FdOpenContext, FdPrepareContext, KindImages, KindState } from './fd-kind.js';

/** One queue of cryo-mqueue.img (an entry as read, or as the dump makes it). */
type Queue = Omit<cryo_mqueue_entry, '$typeName' | '$unknown' | 'msgs'> & { msgs: { prio: number; data: Uint8Array }[] };

export interface MqueueRecord {
  id: number;
  flags: number;
  fown: FownData;
  queueId: number;
  /** Restore side: its queue, from cryo-mqueue.img. */
  queue?: Queue;
}

const IMAGE = 'cryo-mqueue.img';
/** What mq_open honours of an fd's flags. */
const OPEN_FLAGS = O.ACCMODE | O.NONBLOCK;

function isMqueue(link: string, mode: number | null, at?: FdAt): boolean {
  if (!at || mode === null || (mode & S_IF.MT) !== S_IF.REG || !link.startsWith('/')) return false;
  return filesystemType(`/proc/${at.pid}/fd/${at.fd}`) === FS_MAGIC.MQUEUE;
}

/** The pid of the process a notification is registered for (the queue file's NOTIFY_PID), 0 for none. */
function notifyPid(source: string): number {
  const m = /NOTIFY_PID:\s*(\d+)/.exec(readFileSync(source, 'latin1'));
  if (!m) throw new Error(`${source}: no NOTIFY_PID in the queue file`);
  return Number(m[1]);
}

function blocker(f: FdSeen): Blocker | null {
  const at = { pid: f.pid, fd: f.fd, kind: 'mqueue' };
  const name = f.link.replace(/ \(deleted\)$/, '');
  if (name !== f.link) return { ...at, reason: `POSIX message queue ${name} (mq_open) was unlinked: it cannot be opened by name again — not supported` };
  if (readlinkSync(`/proc/${f.pid}/ns/ipc`) !== readlinkSync('/proc/self/ns/ipc')) {
    return { ...at, reason: `POSIX message queue ${name} (mq_open) of an IPC namespace other than cryo's — not supported yet` };
  }
  const pid = notifyPid(`/proc/${f.pid}/fd/${f.fd}`);
  if (pid) return { ...at, reason: `POSIX message queue ${name} (mq_open) has a notification registered (mq_notify, for pid ${pid}) — not supported yet` };
  return overLimits(f, name, at);
}

/**
 * A queue whose attributes are above this machine's limits: without CAP_SYS_RESOURCE, mq_open
 * refuses to create it (EINVAL), so the restore could not.
 */
function overLimits(f: FdSeen, name: string, at: { pid: number; fd: number; kind: string }): Blocker | null {
  const fd = openSync(`/proc/${f.pid}/fd/${f.fd}`, O.RDONLY | O.NONBLOCK | O.CLOEXEC);
  let a;
  try {
    a = mqGetattr(fd, `message queue ${name}`);
  } finally {
    closeSync(fd);
  }
  for (const [what, value] of [['msg_max', a.maxmsg], ['msgsize_max', a.msgsize]] as const) {
    const limit = BigInt(readFileSync(`/proc/sys/fs/mqueue/${what}`, 'latin1').trim());
    if (value > limit) return { ...at, reason: `POSIX message queue ${name} (mq_open) has ${what === 'msg_max' ? 'mq_maxmsg' : 'mq_msgsize'} ${value}, above fs.mqueue.${what} ${limit}: the restore could not create it` };
  }
  return null;
}

/** Every message of the queue, taken and put back in the same order (see the header). */
function takeMessages(fd: number, count: number, msgsize: number, name: string): { prio: number; data: Buffer }[] {
  const msgs: { prio: number; data: Buffer }[] = [];
  try {
    for (let i = 0; i < count; i++) {
      const m = mqReceiveNow(fd, msgsize, `message queue ${name}`);
      if (!m) break;
      msgs.push(m);
    }
  } finally {
    for (const m of msgs) mqSendNow(fd, m.data, m.prio, `message queue ${name}: putting back what the dump took`);
  }
  return msgs;
}

/** The queue `source` (a /proc fd link) opens, with its messages, inspected while the tree is frozen. */
function inspectQueue(source: string, name: string, id: number): Queue {
  const fd = openSync(source, O.RDWR | O.NONBLOCK | O.CLOEXEC);
  try {
    const st = fstatSync(fd);
    const attr = mqGetattr(fd, `message queue ${name}`);
    const msgs = takeMessages(fd, Number(attr.curmsgs), Number(attr.msgsize), name);
    return { id, name, maxmsg: attr.maxmsg, msgsize: attr.msgsize, uid: st.uid, gid: st.gid, mode: st.mode & 0o7777, msgs };
  } finally {
    closeSync(fd);
  }
}

/** The dump's queues, by dev:ino. */
const dumpedQueues = (state: KindState) => state.memo('mqueues', () => new Map<string, Queue>());

/** cryo-mqueue.img's queues, by id. */
const imageQueues = (images: KindImages) =>
  images.memo('cryo-mqueue.img read', () => new Map(((images.read(IMAGE) ?? []) as cryo_mqueue_entry[]).map((q) => [q.id, q])));

/** The queues prepare() made: their names, and our fd of each (released once the tasks have theirs). */
const madeQueues = (images: KindImages) => images.memo('mqueues made', () => ({ names: [] as string[], fds: [] as number[] }));

/** A new queue as the image describes it, with its messages; throws when one of its name exists. */
function createQueue(q: Queue, made: { names: string[]; fds: number[] }): void {
  let fd: number;
  try {
    fd = mqOpen(q.name, O.RDWR | O.CREAT | O.EXCL | O.NONBLOCK, q.mode, { maxmsg: q.maxmsg, msgsize: q.msgsize });
  } catch (e) {
    if (e instanceof SysError && e.errno === E.EEXIST) {
      throw new UserError(`POSIX message queue ${q.name} exists already: the restore would not be the dumped one — remove it (mq_unlink) first`);
    }
    throw e;
  }
  made.names.push(q.name);
  made.fds.push(fd);
  sys('fchown', [fd, q.uid, q.gid], `message queue ${q.name} owner`);
  // mq_open's mode goes through our umask.
  sys('fchmod', [fd, q.mode], `message queue ${q.name} mode`);
  for (const m of q.msgs) mqSendNow(fd, Buffer.from(m.data), m.prio, `message queue ${q.name}`);
}

function attrsText(name: string, maxmsg: bigint, msgsize: bigint, curmsgs: bigint | number): string {
  return `${name} maxmsg ${maxmsg} msgsize ${msgsize} messages ${curmsgs}`;
}

export const mqueueKind = {
  name: 'mqueue' as const,
  type: 'CRYO_MQUEUE',
  field: 'cryoMqueue',
  phase: 'table',
  object: false,
  recognise: isMqueue,
  blocker,
  dump(f: FdSeen, id: number, flags: number, fown: FownData, ctx: FdDumpContext): MqueueRecord {
    const source = `/proc/${f.pid}/fd/${f.fd}`;
    const st = statSync(source);
    const queues = dumpedQueues(ctx);
    const key = `${st.dev}:${st.ino}`;
    let q = queues.get(key);
    if (!q) {
      q = inspectQueue(source, f.link, queues.size + 1);
      queues.set(key, q);
    }
    return { id, flags, fown, queueId: q.id };
  },
  images(_records: MqueueRecord[], state: KindState) {
    const queues = [...dumpedQueues(state).values()];
    return queues.length ? [{ file: IMAGE, kind: 'CRYO_MQUEUE', entries: queues.map((q) => create(cryo_mqueue_entrySchema, q)) }] : [];
  },
  read(entry: unknown, id: number, images: KindImages): MqueueRecord {
    const e = entry as cryo_mqueue_file_entry;
    const queue = imageQueues(images).get(e.queueId);
    if (!queue) throw new UserError(`files.img: message queue file ${id} refers to queue ${e.queueId}, missing from ${IMAGE}`);
    if (!/^\/[^/]+$/.test(queue.name)) throw new UserError(`${IMAGE}: queue ${queue.id} has the name ${JSON.stringify(queue.name)}`);
    return { id, flags: e.flags, fown: e.fown as FownData, queueId: e.queueId, queue };
  },
  prepare(_records: MqueueRecord[], ctx: FdPrepareContext): void {
    const made = madeQueues(ctx.images);
    for (const q of imageQueues(ctx.images).values()) createQueue(q, made);
  },
  open: (rec: MqueueRecord, ctx: FdOpenContext) => {
    try {
      return mqOpen(rec.queue!.name, rec.flags & OPEN_FLAGS);
    } catch (e) {
      throw new Error(`${ctx.what}: ${(e as Error).message}`);
    }
  },
  release(images: KindImages): number[] {
    const made = madeQueues(images);
    return made.fds.splice(0);
  },
  // A queue made for the restored tree stays with it; only a failed restore removes it.
  unmake(images: KindImages, failed: boolean): string[] {
    const made = madeQueues(images);
    const names = made.names.splice(0);
    if (!failed) return [];
    const left: string[] = [];
    for (const name of names) {
      const errno = mqUnlink(name);
      if (errno && errno !== E.ENOENT) left.push(`could not remove the message queue ${name} made for the failed restore (errno ${errno})`);
    }
    return left;
  },
  expect(rec: MqueueRecord, s, key) {
    const q = rec.queue!;
    s.set(`${key} queue`, attrsText(q.name, q.maxmsg, q.msgsize, q.msgs.length));
    s.set(`${key} owner`, `${q.uid}:${q.gid} ${q.mode.toString(8)}`);
  },
  observe(_info, s, key, seen) {
    if (!seen.at) return;
    const fd = openSync(`/proc/${seen.at.pid}/fd/${seen.at.fd}`, O.RDONLY | O.NONBLOCK | O.CLOEXEC);
    try {
      const a = mqGetattr(fd, `message queue ${seen.link}`);
      const st = fstatSync(fd);
      s.set(`${key} queue`, attrsText(seen.link, a.maxmsg, a.msgsize, a.curmsgs));
      s.set(`${key} owner`, `${st.uid}:${st.gid} ${(st.mode & 0o7777).toString(8)}`);
    } finally {
      closeSync(fd);
    }
  },
} satisfies FdKind<MqueueRecord>;
