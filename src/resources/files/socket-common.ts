// What the socket kinds share. Every socket's link is `socket:[INODE]`: its family (which socket
// kind takes it) comes from the fd itself, through our copy of it; families no kind takes are
// refused here, named. On restore a socket kind's prepare() makes all its sockets at once and
// open() hands out the one made for a record (preparedSockets).
import { SOL, SO, getsockoptInt } from '../../sys/index.js';
import type { BlockerCause } from '../../util/blocker.js';
import { UserError } from '../../util/errors.js';
import type { FdAt, FdOpenContext, FdPrepareContext, KindImages } from './fd-kind.js';
import { socketInode, withOurCopy } from './our-copy.js';

const FAMILY_NAME: Record<number, string> = { 17: 'packet', 38: 'alg', 40: 'vsock', 44: 'xdp' };

/** The socket family (AF_*) of the fd at `at` when its link is a socket's; null for any other fd. */
export function socketFamily(link: string, at: FdAt | undefined): number | null {
  if (at === undefined || socketInode(link) === null) return null;
  return withOurCopy(at.pid, at.fd, (ours) => getsockoptInt(ours, SOL.SOCKET, SO.DOMAIN));
}

/** A socket of a family no kind restores, in words and refused ("packet socket — not supported yet"). */
export function unsupportedSocket(family: number): { text: string; cause: BlockerCause } {
  const text = `${FAMILY_NAME[family] ?? `family ${family}`} socket`;
  return { text, cause: { kind: 'socket', reason: `${text} — not supported yet` } };
}

/**
 * The sockets a kind's prepare() made (our fds, by file id, in the restore's state under
 * `name`), the open() that hands out a record's and the release() that gives them all back.
 */
export function preparedSockets(name: string) {
  const made = (images: KindImages) => images.memo(`${name}:made`, () => new Map<number, number>());
  return {
    made,
    /**
     * Once prepare() made them: the restore's open files from now on, as a task's would be (their
     * owners come back with the others', a socket only in flight in a queue included).
     */
    register(ctx: FdPrepareContext): void {
      for (const id of made(ctx.images).keys()) ctx.openFile(id, `${name} socket (file id ${id})`);
    },
    open(rec: { id: number; ino: number }, ctx: FdOpenContext): number {
      const fd = made(ctx.images).get(rec.id);
      if (fd === undefined) throw new UserError(`${ctx.what}: ${name} socket ${rec.ino} (file id ${rec.id}) was not made before the tasks`);
      return fd;
    },
    release(images: KindImages): number[] {
      const fds = [...made(images).values()];
      made(images).clear();
      return fds;
    },
  };
}
