// A unix socket bound to a path name without touching that path. The kernel keeps a bound
// socket's name as the string it was given, whatever becomes of the file: a socket whose file (or
// whole directory) was removed still reports its name, and so does a datagram it sent. To make
// such a socket again, or to send as a sender whose path is now another live socket's, the bind
// runs in a seized helper of ours chrooted into an empty directory, where the path is made; the
// directory goes after, so the name is bound and nothing of the real path is touched.
import { mkdtempSync, mkdirSync, rmSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { tmpdir } from 'node:os';
import { AF, SOCK, E, PROT, MAP, PAGE_SIZE, socket, sysTry, closeFd, unixAddr, vmWrite } from '../../sys/index.js';
import { withSeized } from '../../ptrace/index.js';
import { unixName } from './unix.js';

/**
 * Binds our socket `fd` to the path `name` (as the kernel keeps it), leaving the path alone.
 * `during`: called with a path that reaches the socket (for cryo's filesystem ids) until it returns.
 */
export function bindDetached(fd: number, name: Buffer, what: string, during?: (reach: string) => void): void {
  const path = unixName(name);
  const root = mkdtempSync(join(tmpdir(), 'cryo-bind-'));
  try {
    // A relative name resolves from the helper's working directory: its root, after the chroot.
    mkdirSync(dirname(join(root, path)), { recursive: true });
    const rootZ = Buffer.from(root + '\0');
    const slashZ = Buffer.from('/\0');
    const addr = unixAddr(name);
    if (rootZ.length + slashZ.length + addr.length > PAGE_SIZE) throw new Error(`${what}: a path too long to bind`);
    withSeized(-1, (remote, pid) => {
      const page = remote.call('mmap', [0, PAGE_SIZE, PROT.READ | PROT.WRITE, MAP.PRIVATE | MAP.ANONYMOUS, -1, 0], 'scratch page of the bind helper');
      vmWrite(pid, page, Buffer.concat([rootZ, slashZ, addr]));
      const pidfd = remote.call('pidfd_open', [process.pid, 0], 'pidfd of cryo in the bind helper');
      const sock = remote.call('pidfd_getfd', [pidfd, fd, 0], `${what}: the socket in the bind helper`);
      remote.call('chroot', [page], `${what}: chroot of the bind helper`);
      remote.call('chdir', [page + BigInt(rootZ.length)], `${what}: chdir of the bind helper`);
      remote.call('bind', [sock, page + BigInt(rootZ.length + slashZ.length), addr.length], `${what}: bind to ${path}`);
    });
    during?.(join(root, path));
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
}

/**
 * Whether nothing is bound to the socket file at `path` any more (a datagram connect to it is
 * refused; one to a live socket of either type is not, and changes nothing of it).
 */
export function deadSocketFile(path: string): boolean {
  const probe = socket(AF.UNIX, SOCK.DGRAM);
  try {
    const addr = unixAddr(Buffer.from(path + '\0'));
    return sysTry('connect', [probe, addr, addr.length]).errno === E.ECONNREFUSED;
  } finally {
    closeFd(probe);
  }
}
