// A task's fd table on restore: every open file description, opened or created by the
// restorer (restore/files.ts), pulled into the task with pidfd_getfd and put at its number, then
// each epoll filled with its targets, under the numbers they were registered with.
import { O, F, NR, sys } from '../sys/index.js';
import { eventpoll_tfd_entrySchema } from '../image/gen/eventpoll_pb.js';
import { hasField } from '../image/presence.js';
import { epollEvent } from '../resources/files/anon.js';
import type { RestoreTask } from '../resources/context.js';
import type { TaskImage } from './images.js';
import type { fdinfo_entry } from '../image/gen/fdinfo_pb.js';
import type { FdPhase } from '../resources/files/fd-kind.js';
import { openFile, type RestoreSession } from './files.js';

const EPOLL_CTL_ADD = 1;

/** When the fd is made: with the table, or (a kind that names tasks) once they all exist. */
function phaseOf(session: RestoreSession, fi: fdinfo_entry): FdPhase {
  return session.ckpt.kindFiles.get(fi.id)?.kind.phase ?? 'table';
}

/** Installs the fd table: files opened here, pulled in by the task with pidfd_getfd. */
export function restoreFds(r: RestoreTask, img: TaskImage, session: RestoreSession): void {
  if (!img.fdinfo.length) return;
  const maxFd = Math.max(...img.fdinfo.map((f) => f.fd));
  installFds(r, img.fdinfo.filter((fi) => phaseOf(session, fi) === 'table'), maxFd, session);
  fillEpolls(r, img, maxFd, session);
}

/**
 * The fds of kinds restored once the task's children and threads exist (pidfds): their numbers
 * were left free by restoreFds.
 */
export function restoreFdsAfterChildren(r: RestoreTask, img: TaskImage, session: RestoreSession): void {
  const late = img.fdinfo.filter((fi) => phaseOf(session, fi) === 'after-children');
  if (late.length) installFds(r, late, Math.max(...img.fdinfo.map((f) => f.fd)), session);
}

/** Pulls `fds` into the task at their numbers; `maxFd`: the task's highest fd (temporaries go above). */
function installFds(r: RestoreTask, fds: fdinfo_entry[], maxFd: number, session: RestoreSession): void {
  const call = r.remote.call.bind(r.remote);
  const pidfd0 = call('pidfd_open', [r.restorerPid, 0], 'pidfd of the restorer');
  const pidfd = call('fcntl', [pidfd0, F.DUPFD_CLOEXEC, maxFd + 1]);
  call('close', [pidfd0]);
  try {
    for (const fi of fds) {
      const fd = openFile(session, fi.id, `fd ${fi.fd}`);
      // O_ASYNC registers the fd it is set through (SIGIO's si_fd): set by the task, on its own fd.
      const fl = sys('fcntl', [fd, F.GETFL]);
      if (fl & O.ASYNC) sys('fcntl', [fd, F.SETFL, fl & ~O.ASYNC]);
      const got = call('pidfd_getfd', [pidfd, fd, 0], `fd ${fi.fd}`);
      const cloexec = (fi.flags & 1) !== 0;
      if (got === BigInt(fi.fd)) {
        call('fcntl', [got, F.SETFD, cloexec ? 1 : 0]);
      } else {
        call('dup3', [got, fi.fd, cloexec ? O.CLOEXEC : 0], `fd ${fi.fd}`);
        call('close', [got]);
      }
      if (fl & O.ASYNC) call('fcntl', [fi.fd, F.SETFL, fl], `fd ${fi.fd} O_ASYNC`);
    }
  } finally {
    r.remote.raw(NR.close, [pidfd]);
  }
}

function fillEpolls(r: RestoreTask, img: TaskImage, maxFd: number, session: RestoreSession): void {
  const { ckpt } = session;
  const call = r.remote.call.bind(r.remote);
  // Now that every fd is in place, each epoll (once, in the first task that has it) gets its
  // targets back, registered by the task under their own fd numbers.
  for (const fi of img.fdinfo) {
    const ep = ckpt.anons.get(fi.id);
    if (ep?.type !== 'EVENTPOLL' || session.epollsFilled.has(fi.id)) continue;
    session.epollsFilled.add(fi.id);
    for (const t of ep.epfd.tfd) {
      r.scratch.reset();
      const what = `epoll fd ${fi.fd} target fd ${t.tfd}`;
      const ev = r.scratch.put(epollEvent(t));
      if (!hasField(eventpoll_tfd_entrySchema, t, 'cryoFileFd') || t.cryoFileFd === t.tfd) {
        call('epoll_ctl', [fi.fd, EPOLL_CTL_ADD, t.tfd, ev], what);
        continue;
      }
      // Registered under a number that was closed or reused since: the file (held by another fd)
      // goes under that number for the registration, and whatever is there now comes back.
      const inUse = img.fdinfo.find((f) => f.fd === t.tfd);
      const saved = inUse ? call('fcntl', [t.tfd, F.DUPFD_CLOEXEC, maxFd + 1], what) : -1n;
      call('dup3', [t.cryoFileFd!, t.tfd, 0], what);
      call('epoll_ctl', [fi.fd, EPOLL_CTL_ADD, t.tfd, ev], what);
      if (inUse) {
        call('dup3', [saved, t.tfd, inUse.flags & 1 ? O.CLOEXEC : 0], what);
        call('close', [saved]);
      } else {
        call('close', [t.tfd]);
      }
    }
  }
}
