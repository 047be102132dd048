// The guard of a dump with TCP connections: a small process of its own (tcp-guard-main.ts) that
// undoes what this dump did to the network should cryo die without doing it itself (SIGKILL
// cannot be caught). Before any socket enters repair mode the guard holds its own copy of it, and
// it knows the lock's name before the lock exists; when its pipe from cryo closes without a
// "done" it takes every socket out of repair mode and removes the lock, unless the images were
// complete and the tree is dead (a kill-dump that only missed its last words: the lock is the
// restore's). Commands are lines on the guard's stdin; each is answered by one line.
import { spawn } from 'node:child_process';
import { readSync, writeSync, closeSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { sys, O } from '../../sys/index.js';
import { parseStat } from '../../proc/stat.js';
import { readFileSync } from 'node:fs';

const MAIN = fileURLToPath(new URL('./tcp-guard-main.js', import.meta.url));

function pipe(): [number, number] {
  const fds = Buffer.alloc(8);
  sys('pipe2', [fds, O.CLOEXEC], 'a pipe to the TCP guard');
  return [fds.readInt32LE(0), fds.readInt32LE(4)];
}

function startTime(pid: number): string {
  try {
    return parseStat(readFileSync(`/proc/${pid}/stat`, 'utf8')).startTime.toString();
  } catch {
    return '0';
  }
}

export class TcpGuard {
  private open = true;

  private constructor(private readonly to: number, private readonly from: number) {}

  /** Starts the guard for the tasks `tree` (pids); returns once it listens. */
  static start(tree: number[]): TcpGuard {
    const [cmdR, cmdW] = pipe();
    const [ansR, ansW] = pipe();
    try {
      // Its own session: a terminal's ^C (SIGINT to cryo's group) must not end it with cryo.
      const child = spawn(process.execPath, [MAIN], { stdio: [cmdR, ansW, 'ignore'], detached: true });
      child.unref();
    } finally {
      closeSync(cmdR);
      closeSync(ansW);
    }
    const g = new TcpGuard(cmdW, ansR);
    g.ask(`tree ${tree.map((p) => `${p}:${startTime(p)}`).join(' ')}`);
    return g;
  }

  private ask(line: string): void {
    if (!this.open) throw new Error('the TCP guard is gone');
    writeSync(this.to, line + '\n');
    let answer = '';
    const b = Buffer.alloc(256);
    while (!answer.endsWith('\n')) {
      const n = readSync(this.from, b, 0, b.length, null);
      if (n === 0) throw new Error(`the TCP guard ended before answering "${line.slice(0, 40)}"`);
      answer += b.toString('utf8', 0, n);
    }
    if (answer !== 'ok\n') throw new Error(`the TCP guard: ${answer.trim()}`);
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
    if (!this.open) return;
    try {
      this.ask('done');
    } catch {
      /* gone already: nothing of ours left to close */
    }
    this.open = false;
    closeSync(this.to);
    closeSync(this.from);
  }
}
