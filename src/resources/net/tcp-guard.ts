// The guard of a dump with TCP connections: a small process of its own (tcp-guard-main.ts) that
// undoes what this dump did to the network should cryo die without doing it itself (SIGKILL
// cannot be caught). Before any socket enters repair mode the guard holds its own copy of it, and
// it knows the lock's name before the lock exists; when its pipe from cryo closes without a
// "done" it takes every socket out of repair mode and removes the lock, unless the images were
// complete and the tree is dead (a kill-dump that only missed its last words: the lock is the
// restore's). Commands are lines on the guard's stdin; each is answered by one line.
import { fileURLToPath } from 'node:url';
import { GuardLink } from '../../sys/index.js';
import { startTimeOf } from '../task/start-time.js';

const MAIN = fileURLToPath(new URL('./tcp-guard-main.js', import.meta.url));

export class TcpGuard {
  private constructor(private readonly link: GuardLink) {}

  /** Starts the guard for the tasks `tree` (pids); returns once it listens. */
  static start(tree: number[]): TcpGuard {
    const g = new TcpGuard(GuardLink.start('TCP guard', MAIN));
    g.ask(`tree ${tree.map((p) => `${p}:${startTimeOf(p)}`).join(' ')}`);
    return g;
  }

  private ask(line: string): void {
    this.link.ask(line);
  }

  /** The guard takes its own copies of these sockets (before they enter repair mode). */
  take(fds: { pid: number; fd: number }[]): void {
    this.ask(`take ${fds.map((f) => `${f.pid}:${f.fd}`).join(' ')}`);
  }

  /** The name the lock will have (told before it exists). */
  lockName(mode: string, name: string): void {
    this.ask(`lock ${mode} ${name}`);
  }

  /** inventory.img is written: a dead tree's lock is now the restore's. */
  complete(): void {
    this.ask('complete');
  }

  /**
   * cryo did everything itself: the guard closes its copies and ends. Waits for that, so that
   * no copy of a socket outlives the dump (a restore needs its 4-tuple free).
   */
  done(): void {
    this.link.close('done');
  }
}
