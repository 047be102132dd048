// Running the CLI on a pseudo-terminal (python3's pty module): stdin, stdout and stderr are all
// the terminal, as for a user at a shell, so what cryo draws only on a terminal can be seen.
import { spawnSync } from 'node:child_process';
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
