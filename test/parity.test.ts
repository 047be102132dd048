// A dump of `sleep` has the same image files, and the same fields in them, as CRIU 4.2's dump of
// `sleep` in shared/fixtures; and a process cryo cannot checkpoint is refused untouched.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, readdirSync, rmSync, readFileSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { FIXTURES } from './lib/build.js';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const CLI = join(ROOT, 'bin', 'cryo.js');
const FIXTURE = join(FIXTURES, 'simple-sleep');
const started: number[] = [];
const dirs: string[] = [];

after(() => {
  for (const pid of started) {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      /* already gone */
    }
  }
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

/** Starts `cmd` in its own session with only stdio open (inherited fds closed first). */
function startClean(script: string): number {
  const c = spawn('bash', ['-c', `for f in /proc/$$/fd/*; do n=\${f##*/}; [ "$n" -gt 2 ] && eval "exec $n>&-"; done; ${script}`], {
    detached: true,
    stdio: 'ignore',
  });
  c.unref();
  started.push(c.pid!);
  return c.pid!;
}

async function waitExec(pid: number, comm: string): Promise<void> {
  for (let i = 0; i < 200; i++) {
    if (readFileSync(`/proc/${pid}/comm`, 'utf8').trim() === comm) return;
    await new Promise((r) => setTimeout(r, 10));
  }
  throw new Error(`pid ${pid} did not become ${comm}`);
}

function fieldPaths(v: unknown, pre = '', out = new Set<string>()): Set<string> {
  if (Array.isArray(v)) for (const x of v) fieldPaths(x, pre + '[].', out);
  else if (v && typeof v === 'object') {
    for (const [k, x] of Object.entries(v)) {
      out.add(pre + k);
      fieldPaths(x, pre + k + '.', out);
    }
  }
  return out;
}

function critFields(dir: string): Map<string, Set<string>> {
  const m = new Map<string, Set<string>>();
  for (const f of readdirSync(dir).sort()) {
    if (f.startsWith('pages-') || f === 'cryo-manifest.json') continue; // cryo's own, not a CRIU image
    const r = spawnSync('crit', ['decode', '-i', join(dir, f)], { encoding: 'utf8' });
    assert.equal(r.status, 0, `crit cannot decode ${f}: ${r.stderr}`);
    m.set(f.replace(/-\d+/, '-N'), fieldPaths(JSON.parse(r.stdout).entries));
  }
  return m;
}

function cryo(...args: string[]) {
  return spawnSync(process.execPath, [CLI, ...args], { encoding: 'utf8', timeout: 60_000 });
}

test('a sleep dump has the files and fields of CRIU 4.2\'s', async () => {
  const pid = startClean('exec sleep 1000');
  await waitExec(pid, 'sleep');
  const dir = mkdtempSync(join(tmpdir(), 'cryo-parity-'));
  dirs.push(dir);
  const r = cryo('dump', '-t', String(pid), '-D', join(dir, 'img'), '--leave-running');
  assert.equal(r.status, 0, r.stderr);
  assert.ok(existsSync(`/proc/${pid}`), 'the process is still running after --leave-running');
  const ours = critFields(join(dir, 'img'));
  const criu = critFields(FIXTURE);
  // cgroup.img: CRIU writes it too unless told not to manage cgroups, as this fixture was.
  // cpuinfo.img: CRIU writes it with `criu cpuinfo dump`; cryo's dump records the CPU every time.
  assert.deepEqual([...ours.keys()].filter((f) => f !== 'cgroup.img' && f !== 'cpuinfo.img'), [...criu.keys()], 'same set of image files');
  for (const [file, fields] of criu) {
    // CRIU's sleep had an inherited pipe at fd 251; ours has none.
    const missing = [...fields].filter((f) => !ours.get(file)!.has(f) && !f.includes('pipe'));
    assert.deepEqual(missing, [], `${file}: fields CRIU writes that cryo does not`);
  }
  // root_ids stand for the dumper: which of the task's ids equal them, and the values, as CRIU's.
  const idsOf = (d: string) => {
    const inv = JSON.parse(spawnSync('crit', ['decode', '-i', join(d, 'inventory.img')], { encoding: 'utf8' }).stdout).entries[0].root_ids;
    const idsFile = readdirSync(d).find((f) => f.startsWith('ids-'))!;
    const task = JSON.parse(spawnSync('crit', ['decode', '-i', join(d, idsFile)], { encoding: 'utf8' }).stdout).entries[0];
    return { inv, task, fdinfo: readdirSync(d).filter((f) => f.startsWith('fdinfo-')) };
  };
  assert.deepEqual(idsOf(join(dir, 'img')), idsOf(FIXTURE), 'root_ids, ids-PID.img and the fd table name as CRIU 4.2 writes them');
});

// A packet socket stands for every kind cryo does not checkpoint yet.
const WITH_SOCKET = (n: number) =>
  `exec python3 -c "import os, socket; a = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, 0); os.dup2(a.fileno(), 7); os.execvp('sleep', ['sleep', '${n}'])"`;

test('a process holding a packet socket is refused, named, and keeps running', async () => {
  const pid = startClean(WITH_SOCKET(1001));
  await waitExec(pid, 'sleep');
  const dir = mkdtempSync(join(tmpdir(), 'cryo-refuse-'));
  dirs.push(dir);
  const r = cryo('dump', '-t', String(pid), '-D', join(dir, 'img'));
  assert.notEqual(r.status, 0);
  assert.match(r.stderr, new RegExp(`pid ${pid} fd 7: packet socket — not supported yet`));
  assert.equal(r.stderr.trim().split('\n').length, 1, `one line of error: ${r.stderr}`);
  assert.ok(!existsSync(join(dir, 'img', 'inventory.img')), 'no complete-looking image directory');
  const state = readFileSync(`/proc/${pid}/stat`, 'utf8').split(' ')[2];
  assert.ok(state === 'S' || state === 'R', `the process runs on, untouched (state ${state})`);
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  assert.match(status, /TracerPid:\s+0/);
});

test('cryo check: the kernel, a checkpointable process, and a blocker named', async () => {
  const kernel = cryo('check');
  assert.equal(kernel.status, 0, kernel.stdout + kernel.stderr);
  assert.match(kernel.stdout, /ok +clone3 with set_tid/);
  const ok = startClean('exec sleep 1002');
  await waitExec(ok, 'sleep');
  const good = cryo('check', '-t', String(ok), '-v');
  assert.equal(good.status, 0, good.stdout + good.stderr);
  assert.match(good.stdout, new RegExp(`pid ${ok} can be checkpointed`));
  assert.match(good.stdout, /map +0x[0-9a-f]+-0x[0-9a-f]+ \/usr\/bin\/sleep — ok \(file-private\)/);
  const bad = startClean(WITH_SOCKET(1003));
  await waitExec(bad, 'sleep');
  const refused = cryo('check', '-t', String(bad), '-v');
  assert.equal(refused.status, 3, 'refused: exit 3');
  assert.match(refused.stdout, new RegExp(`pid ${bad} fd 7: packet socket — not supported yet`));
  assert.match(refused.stdout, /fd 7 +packet socket — not supported yet/);
  assert.match(readFileSync(`/proc/${bad}/status`, 'utf8'), /TracerPid:\s+0/);
});

test('bad command lines are one clear line and a non-zero exit', () => {
  const noPid = cryo('dump', '-D', '/tmp/x');
  assert.notEqual(noPid.status, 0);
  assert.match(noPid.stderr, /needs -t PID/);
  const gone = cryo('dump', '-t', '999999999', '-D', '/tmp/x');
  assert.notEqual(gone.status, 0);
  assert.match(gone.stderr, /no process with PID 999999999/);
  const noDir = cryo('restore', '-D', '/nonexistent/cryo');
  assert.notEqual(noDir.status, 0);
  assert.equal(noDir.stderr.trim().split('\n').length, 1, noDir.stderr);
});
