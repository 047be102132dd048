// A guard: a small node program of cryo's own, in a session of its own (a terminal's ^C to cryo's
// group must not end it too), that undoes what a dump left should cryo die without doing it
// itself (SIGKILL cannot be caught). Commands are lines on the guard's stdin, each answered by
// one line on its stdout ("ok" or what went wrong); its stdin closing without the last word is
// how it learns that cryo died. Used by the TCP guard (resources/net/tcp-guard.ts) and the
// snapshot guard (dump/snapshot-guard.ts).
import { spawn } from 'node:child_process';
import { readSync, writeSync, closeSync } from 'node:fs';
import { sys } from './libc.js';
import { O } from './consts.js';

function pipe(what: string): [number, number] {
  const fds = Buffer.alloc(8);
  sys('pipe2', [fds, O.CLOEXEC], what);
  return [fds.readInt32LE(0), fds.readInt32LE(4)];
}

export class GuardLink {
  private open = true;

  private constructor(private readonly name: string, private readonly to: number, private readonly from: number) {}

  /** Starts `node main` (a guard's program); returns at once (the first ask waits for it). */
  static start(name: string, main: string): GuardLink {
    const [cmdR, cmdW] = pipe(`a pipe to the ${name}`);
    const [ansR, ansW] = pipe(`a pipe from the ${name}`);
    try {
      const child = spawn(process.execPath, [main], { stdio: [cmdR, ansW, 'ignore'], detached: true });
      child.unref();
    } finally {
      closeSync(cmdR);
      closeSync(ansW);
    }
    return new GuardLink(name, cmdW, ansR);
  }

  get alive(): boolean {
    return this.open;
  }

  /** Sends one command and waits for its answer; throws unless it is "ok". */
  ask(line: string): void {
    if (!this.open) throw new Error(`the ${this.name} is gone`);
    writeSync(this.to, line + '\n');
    let answer = '';
    const b = Buffer.alloc(256);
    while (!answer.endsWith('\n')) {
      const n = readSync(this.from, b, 0, b.length, null);
      if (n === 0) throw new Error(`the ${this.name} ended before answering "${line.slice(0, 40)}"`);
      answer += b.toString('utf8', 0, n);
    }
    if (answer !== 'ok\n') throw new Error(`the ${this.name}: ${answer.trim()}`);
  }

  /** The last word (`line`, answered once the guard has done its part), then the pipes closed. */
  close(line = 'done'): void {
    if (!this.open) return;
    try {
      this.ask(line);
    } catch {
      /* gone already */
    }
    this.open = false;
    closeSync(this.to);
    closeSync(this.from);
  }
}

/**
 * A guard program's loop: each line of stdin goes to `command` (its words), answered "ok" or
 * "error: ..." when it throws; `command` returns false for the last word (the guard then ends).
 * stdin closing first means cryo died: `orphaned` does the guard's work, then it ends.
 */
export async function serveGuard(command: (cmd: string, args: string[]) => boolean, orphaned: () => void | Promise<void>): Promise<never> {
  let pending = '';
  const buf = Buffer.alloc(65536);
  for (;;) {
    let n: number;
    try {
      n = readSync(0, buf, 0, buf.length, null);
    } catch {
      n = 0;
    }
    if (n === 0) {
      await orphaned();
      break;
    }
    pending += buf.toString('utf8', 0, n);
    let nl: number;
    let go = true;
    while (go && (nl = pending.indexOf('\n')) >= 0) {
      const [cmd, ...args] = pending.slice(0, nl).split(' ').filter((w) => w);
      pending = pending.slice(nl + 1);
      try {
        go = command(cmd ?? '', args);
        writeSync(1, 'ok\n');
      } catch (e) {
        writeSync(1, `error: ${(e as Error).message}\n`);
      }
    }
    if (!go) break;
  }
  process.exit(0);
}
