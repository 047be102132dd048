// Running the CLI on a pseudo-terminal (python3's pty module): stdin, stdout and stderr are all
// the terminal, as for a user at a shell, so what cryo draws only on a terminal can be seen.
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import { O, TIOC, ioctlSetInt, ptyIndex } from '../../src/sys/index.js';
import { CRYO_BIN } from './cryo.js';
import { REPO_ROOT } from './build.js';

const PTY_RUNNER = `
import os, pty, sys
pid, fd = pty.fork()
if pid == 0:
    os.execv(sys.argv[1], sys.argv[1:])
out = b""
while True:
    try:
        data = os.read(fd, 65536)
    except OSError:
        break
    if not data:
        break
    out += data
_, status = os.waitpid(pid, 0)
sys.stdout.buffer.write(out)
sys.exit(os.waitstatus_to_exitcode(status) & 0xff)
`;

export interface PtyResult {
  code: number | null;
  /** Everything written to the terminal (stdout and stderr together, with the terminal's CRLFs). */
  output: string;
}

/** `node bin/cryo.js ARGS` on a new pty; CRYO_FAIL_AT is not inherited. */
export function cryoOnPty(args: string[], env: Record<string, string> = {}, timeoutMs = 120_000): PtyResult {
  const base: Record<string, string> = {};
  for (const [k, v] of Object.entries(process.env)) if (v !== undefined && k !== 'CRYO_FAIL_AT') base[k] = v;
  const r = spawnSync('/usr/bin/python3', ['-c', PTY_RUNNER, process.execPath, CRYO_BIN, ...args], {
    env: { ...base, TERM: 'xterm', ...env },
    cwd: REPO_ROOT,
    timeout: timeoutMs,
    killSignal: 'SIGKILL',
    maxBuffer: 64 << 20,
  });
  return { code: r.status, output: r.stdout.toString('utf8') + r.stderr.toString('utf8') };
}

/**
 * A pty the test owns: it holds the master (non-blocking), a program gets the slave
 * (`path`) as its terminal; the test types into it and reads what appears on it.
 */
export class OwnedPty {
  readonly master: number;
  readonly index: number;
  readonly path: string;
  private seen = '';

  constructor() {
    this.master = fs.openSync('/dev/ptmx', O.RDWR | O.NOCTTY | O.NONBLOCK | O.CLOEXEC);
    ioctlSetInt(this.master, TIOC.TIOCSPTLCK, 0, 'unlock the test pty');
    this.index = ptyIndex(this.master);
    this.path = `/dev/pts/${this.index}`;
  }

  type(text: string): void {
    fs.writeSync(this.master, text);
  }

  /** Everything the terminal showed so far. */
  output(): string {
    const buf = Buffer.alloc(65536);
    for (;;) {
      let n: number;
      try {
        n = fs.readSync(this.master, buf, 0, buf.length, null);
      } catch {
        break; // EAGAIN: nothing more now; EIO: no slave open
      }
      if (n <= 0) break;
      this.seen += buf.subarray(0, n).toString('latin1');
    }
    return this.seen;
  }

  /** Waits until the output matches `re` (after `from`, an offset into it); returns the match. */
  async waitFor(re: RegExp, from = 0, ms = 20_000): Promise<RegExpExecArray> {
    for (const end = Date.now() + ms; Date.now() < end; await new Promise((r) => setTimeout(r, 20))) {
      const m = re.exec(this.output().slice(from));
      if (m) return m;
    }
    throw new Error(`${this.path}: no ${re} in what it showed:\n${this.output().slice(from)}`);
  }

  close(): void {
    fs.closeSync(this.master);
  }
}
