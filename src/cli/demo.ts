// `cryo demo`: the whole story in one command. A small counter process runs, is checkpointed
// (and killed), restored with the same PID, and shown to go on counting from where it was.
import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, openSync, readFileSync, rmSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';

const CLI = join(dirname(fileURLToPath(import.meta.url)), '..', '..', '..', 'bin', 'cryo.js');

// It closes whatever fds it inherited beyond stdio: an inherited pipe would be refused. Each
// count is written to a temporary file renamed over counter.txt, so a reader never sees the file
// truncated and empty (the demo reads it at any moment).
const COUNTER = `
import os, time
os.closerange(3, 65536)
n = 0
while True:
    n += 1
    with open("counter.txt.tmp", "w") as f:
        f.write(str(n))
    os.replace("counter.txt.tmp", "counter.txt")
    time.sleep(0.1)
`;

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
function count(dir: string): number {
  const text = readFileSync(join(dir, 'counter.txt'), 'utf8');
  const n = Number(text);
  if (!text || !Number.isInteger(n)) throw new Error(`counter.txt holds '${text}', not a count`);
  return n;
}

function cryo(args: string[]): void {
  process.stdout.write(`$ cryo ${args.join(' ')}\n`);
  const r = spawnSync(process.execPath, [CLI, ...args], { stdio: 'inherit' });
  if (r.status !== 0) throw new Error(`cryo ${args[0]} failed (exit ${r.status})`);
}

export async function runDemo(): Promise<void> {
  if (process.getuid?.() !== 0) throw new Error('the demo checkpoints a process: run it as root');
  const dir = mkdtempSync(join(tmpdir(), 'cryo-demo-'));
  const images = join(dir, 'images');
  const log = openSync(join(dir, 'counter.log'), 'a');
  const child = spawn('python3', ['-c', COUNTER], { cwd: dir, detached: true, stdio: ['ignore', log, log] });
  const pid = child.pid!;
  let restored = false;
  try {
    process.stdout.write(`started a counter (python3), pid ${pid}, counting in ${dir}/counter.txt\n`);
    while (!existsSync(join(dir, 'counter.txt'))) await sleep(50);
    await sleep(1000);
    const before = count(dir);
    process.stdout.write(`counter is at ${before}\n`);
    cryo(['dump', '-t', String(pid), '-D', images]);
    await new Promise((r) => (child.exitCode !== null || child.signalCode !== null ? r(null) : child.once('exit', r)));
    const atDump = count(dir);
    process.stdout.write(`pid ${pid} is gone (killed after the checkpoint); counter stopped at ${atDump}\n`);
    await sleep(1000);
    process.stdout.write(`one second later it is still ${count(dir)}\n`);
    cryo(['restore', '-d', '-D', images]);
    restored = true;
    await sleep(1000);
    const after = count(dir);
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    process.stdout.write(`restored: pid ${pid} is ${stat.split(' ')[2] === 'Z' ? 'a zombie' : 'running'} again, counter at ${after}\n`);
    if (after <= atDump) throw new Error(`the restored counter did not go on (${after} <= ${atDump})`);
    process.stdout.write(`it went on from ${atDump} to ${after}: checkpoint and restore worked.\n`);
  } finally {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      /* already gone */
    }
    void restored;
    rmSync(dir, { recursive: true, force: true });
  }
}
