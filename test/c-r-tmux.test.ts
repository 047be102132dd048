// tmux, checkpointed and restored through the CLI: a server (its socket in the test's dir) with
// two windows, one shell printing a line every 0.2 s, one idle shell with some history, is dumped
// (killed) and restored; `tmux capture-pane` then shows both windows with their history, the
// printing one goes on printing, and keys sent to the idle shell run a command whose output
// shows up; a --leave-running dump leaves it printing and answering. The server's PID comes from
// tmux itself (#{pid}); everything is killed by PID.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { after, describe, it } from 'node:test';
import { cleanupTrees, descendants, cryo, cryoReport, critDecodeAll, trackPid, makeTempDir, buildTarget } from './lib/index.js';
import { sleep, waitPidGone } from './lib/proc.js';

after(cleanupTrees);

/** A tmux server on a socket in a fresh dir, with window 0 printing and window 1 an idle shell with history. */
async function startServer(): Promise<{ dir: string; server: number; tmux: (...args: string[]) => string; pane: (w: string) => string; until: (what: string, ok: () => boolean) => Promise<void> }> {
  const dir = makeTempDir('cryo-t-tmux-');
  const sock = path.join(dir, 'sock');
  const env = { PATH: '/usr/bin:/bin', TERM: 'xterm', HOME: dir, LC_ALL: 'C', SHELL: '/bin/sh', PS1: 'idle-sh> ' };
  const tmux = (...args: string[]) => {
    // through launch: the server must not inherit the test runner's non-CLOEXEC fds
    const r = spawnSync(buildTarget('launch'), ['tmux', '-S', sock, '-f', '/dev/null', ...args], { cwd: dir, env, encoding: 'utf8', timeout: 20_000 });
    assert.equal(r.status, 0, `tmux ${args.join(' ')}: ${r.stderr}`);
    return r.stdout;
  };
  const pane = (w: string) => tmux('capture-pane', '-p', '-S', '-', '-t', `cryo:${w}`);
  const until = async (what: string, ok: () => boolean) => {
    for (let i = 0; i < 500; i++) {
      if (ok()) return;
      await sleep(20);
    }
    assert.fail(`timed out waiting for ${what}`);
  };
  tmux('new-session', '-d', '-s', 'cryo', '-x', '100', '-y', '30', "sh -c 'i=0; while :; do i=$((i+1)); echo line $i; sleep 0.2; done'");
  const server = Number(tmux('display-message', '-p', '#{pid}').trim());
  trackPid(server, ['tmux'], dir);
  tmux('new-window', '-t', 'cryo:1', 'sh');
  await until('the idle shell', () => pane('1').includes('idle-sh>'));
  tmux('send-keys', '-t', 'cryo:1', 'echo before-$((6*7))', 'Enter');
  await until('the history line', () => pane('1').includes('before-42'));
  await until('a few printed lines', () => /line 5\b/.test(pane('0')));
  return { dir, server, tmux, pane, until };
}

function killTree(pids: Iterable<number>): void {
  for (const p of pids) {
    try {
      process.kill(p, 'SIGKILL');
    } catch {
      /* gone */
    }
  }
}

const lastLine = (text: string) => Math.max(...[...text.matchAll(/line (\d+)/g)].map((m) => Number(m[1])));

describe('c/r tmux', () => {
  it('dump --leave-running: the server goes on printing and answering keys', async () => {
    const { dir, server, tmux, pane, until } = await startServer();
    try {
      descendants(server);
      const img = path.join(dir, 'img');
      fs.mkdirSync(img, { mode: 0o700 });
      const d = cryo(['dump', '-t', String(server), '-D', img, '--leave-running', '-v4', '-o', path.join(dir, 'dump.log')]);
      assert.equal(d.code, 0, cryoReport(d));
      await critDecodeAll(img);
      const last = lastLine(pane('0'));
      await until('window 0 printing on', () => pane('0').includes(`line ${last + 3}`));
      tmux('send-keys', '-t', 'cryo:1', 'echo after-$((6*9))', 'Enter');
      await until('the command typed after the dump', () => pane('1').includes('after-54'));
    } finally {
      killTree(new Set(descendants(server)));
    }
  });

  it('a server with a printing and an idle window: dumped, killed, restored; both windows keep their history and work', async () => {
    const { dir, server, tmux, pane, until } = await startServer();
    let tree: number[] = [server];
    try {
      tree = descendants(server);
      const panes = tmux('list-panes', '-s', '-t', 'cryo', '-F', '#{pane_pid}').trim();
      const lastBefore = lastLine(pane('0'));

      const img = path.join(dir, 'img');
      fs.mkdirSync(img, { mode: 0o700 });
      const d = cryo(['dump', '-t', String(server), '-D', img, '-v4', '-o', path.join(dir, 'dump.log')]);
      assert.equal(d.code, 0, cryoReport(d));
      for (const p of tree) assert.ok(await waitPidGone(p, 20_000), `pid ${p} still exists after the dump`);
      const images = await critDecodeAll(img);
      assert.ok(images.has('tty-info.img'), 'tty-info.img written');

      const r = cryo(['restore', '-D', img, '-d', '--pidfile', path.join(dir, 'pid'), '-v4', '-o', path.join(dir, 'restore.log')]);
      assert.equal(r.code, 0, cryoReport(r));
      // The server and the panes' shells are back with their PIDs (the printing loop's `sleep`s come and go).
      const back = descendants(server);
      assert.equal(tmux('display-message', '-p', '#{pid}').trim(), String(server), 'the restored server answers');
      assert.equal(tmux('list-panes', '-s', '-t', 'cryo', '-F', '#{pane_pid}').trim(), panes, 'the same panes');
      for (const p of panes.split('\n').map(Number)) assert.ok(back.includes(p), `pane shell ${p} is back: ${back.join(' ')}`);

      const first = pane('0');
      assert.ok(first.includes(`line ${lastBefore}`), `window 0 keeps its history:\n${first}`);
      await until('window 0 printing on', () => pane('0').includes(`line ${lastBefore + 3}`));
      assert.ok(pane('1').includes('before-42'), `window 1 keeps its history:\n${pane('1')}`);
      tmux('send-keys', '-t', 'cryo:1', 'echo after-$((6*9))', 'Enter');
      await until('the command typed after the restore', () => pane('1').includes('after-54'));
    } finally {
      killTree(new Set([...tree, ...descendants(server)]));
    }
  });
});
