// The guard of a cgroup freeze: SIGKILL of cryo cannot be caught, and a cgroup left frozen stays
// frozen for ever (nothing in the kernel thaws it). The guard is a shell of its own session that
// waits on a pipe from cryo; when the pipe closes without "done" (cryo died, the kernel closed
// its end), it writes 0 to the cgroup's cgroup.freeze. It is started before the freeze and told
// "done" once cryo has thawed the cgroup itself; the tasks are then held by ptrace, which the
// kernel undoes by itself if cryo dies.
import { spawn } from 'node:child_process';
import { closeSync, writeSync } from 'node:fs';
import { sys, O } from '../../sys/index.js';

const SCRIPT = 'read -r word; [ "$word" = done ] || echo 0 > "$1"';

export class FreezeGuard {
  private constructor(private to: number | null) {}

  /** Starts a guard that thaws the cgroup at `dir` if this process dies before done(). */
  static start(dir: string): FreezeGuard {
    const fds = Buffer.alloc(8);
    // CLOEXEC: no other program cryo starts may hold the write end (the guard would never see EOF).
    sys('pipe2', [fds, O.CLOEXEC], 'a pipe to the cgroup freeze guard');
    const [r, w] = [fds.readInt32LE(0), fds.readInt32LE(4)];
    try {
      // spawn returns once the shell is exec'd: from then on it holds the read end.
      const child = spawn('/bin/sh', ['-c', SCRIPT, 'cryo-freeze-guard', `${dir}/cgroup.freeze`], { stdio: [r, 'ignore', 'ignore'], detached: true });
      child.unref();
      if (child.pid === undefined) throw new Error('the cgroup freeze guard (/bin/sh) did not start');
    } catch (e) {
      closeSync(w);
      throw e;
    } finally {
      closeSync(r);
    }
    return new FreezeGuard(w);
  }

  /** cryo has thawed the cgroup: the guard ends without touching it. */
  done(): void {
    if (this.to === null) return;
    try {
      writeSync(this.to, 'done\n');
    } catch {
      /* the guard is gone: nothing left to tell */
    }
    closeSync(this.to);
    this.to = null;
  }
}
