// An exploratory look at real-world terminal state: a live tmux server (two windows, a shell
// printing lines in one, an idle shell in the other) read from outside with pidfd_getfd: which
// fds it holds and, for each pty master, the session, foreground group and window of its pane.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { after, describe, it } from 'node:test';
import { cleanup, trackPid, makeTempDir, buildTarget } from './lib/index.js';
import { sleep, waitPidGone } from './lib/proc.js';
import { pidfdOpen, pidfdGetfd, closeFd } from '../src/sys/index.js';
import { dumpPtyEnd, type PtyEnd } from '../src/resources/tty/pty.js';
import { parseStatTty, type StatTty } from '../src/proc/tty.js';

after(cleanup);

function statTty(pid: number): StatTty {
  return parseStatTty(fs.readFileSync(`/proc/${pid}/stat`, 'utf8'));
}

/** PIDs of `pid`'s descendants (children first), from /proc/PID/task/TID/children. */
function descendants(pid: number): number[] {
  const out: number[] = [];
  const walk = (p: number) => {
    let tids: string[] = [];
    try {
      tids = fs.readdirSync(`/proc/${p}/task`);
    } catch {
      return;
    }
    for (const tid of tids) {
      let kids = '';
      try {
        kids = fs.readFileSync(`/proc/${p}/task/${tid}/children`, 'utf8');
      } catch {
        continue;
      }
      for (const k of kids.trim().split(/\s+/).filter(Boolean).map(Number)) {
        out.push(k);
        walk(k);
      }
    }
  };
  walk(pid);
  return out;
}

describe('a live tmux server, from outside (exploratory)', () => {
  it('holds one pty master per pane, each the controlling tty of the session of the shell in it', async (t) => {
    const version = spawnSync('tmux', ['-V'], { encoding: 'utf8' });
    assert.equal(version.status, 0, 'tmux is not installed (.ci/run installs it)');
    const dir = makeTempDir('cryo-tmux-');
    const sock = path.join(dir, 'sock');
    const env = { PATH: '/usr/bin:/bin', TERM: 'xterm', HOME: dir, LC_ALL: 'C' };
    const tmux = (...args: string[]) => {
      // through launch: the server must not inherit the test runner's non-CLOEXEC fds
      const r = spawnSync(buildTarget('launch'), ['tmux', '-S', sock, '-f', '/dev/null', ...args], { cwd: dir, env, encoding: 'utf8' });
      assert.equal(r.status, 0, `tmux ${args.join(' ')}: ${r.stderr}`);
      return r.stdout.trim();
    };
    tmux('new-session', '-d', '-s', 'cryo', '-x', '100', '-y', '30', "sh -c 'i=0; while :; do i=$((i+1)); echo line $i; sleep 0.2; done'");
    const server = Number(tmux('display-message', '-p', '#{pid}'));
    trackPid(server, ['tmux'], dir); // its cwd is `dir`: cleanup() kills it by PID if we do not
    const kill = async () => {
      const all = [server, ...descendants(server)];
      for (const p of all) {
        try {
          process.kill(p, 'SIGKILL');
        } catch {
          // gone already
        }
      }
      for (const p of all) await waitPidGone(p);
    };
    try {
      tmux('new-window', '-t', 'cryo', 'sh');
      const panes = tmux('list-panes', '-s', '-t', 'cryo', '-F', '#{pane_pid} #{pane_tty} #{pane_width}x#{pane_height}').split('\n');
      assert.equal(panes.length, 2, panes.join('; '));
      for (const p of panes) {
        const pid = Number(p.split(' ')[0]);
        for (let i = 0; i < 500 && statTty(pid).ttyNr === 0; i++) await sleep(10);
      }
      // A client connection may come and go while we look (tmux's own clients, just exited).
      const link = (fd: number) => {
        try {
          return fs.readlinkSync(`/proc/${server}/fd/${fd}`);
        } catch {
          return null;
        }
      };
      const fds = fs.readdirSync(`/proc/${server}/fd`).map(Number).sort((x, y) => x - y);
      const kinds = fds.map((fd) => `${fd}=${link(fd) ?? '(closed meanwhile)'}`);
      t.diagnostic(`tmux ${version.stdout.trim()} server ${server} fds: ${kinds.join(' ')}`);
      const pidfd = pidfdOpen(server);
      const masters: PtyEnd[] = [];
      try {
        for (const fd of fds) {
          if (link(fd) !== '/dev/ptmx') continue;
          const ours = pidfdGetfd(pidfd, fd);
          try {
            const e = dumpPtyEnd(ours);
            masters.push(e);
            const canon = (e.termios.lflag & 2) !== 0;
            t.diagnostic(`fd ${fd}: pty ${e.index} sid ${e.sid} fg ${e.pgrp} ${e.winsize.col}x${e.winsize.row} ${canon ? 'canonical' : 'raw'} ` +
              `packet ${e.packetMode} locked ${e.locked} excl ${e.exclusive} readable ${e.queued.readable} node ${JSON.stringify(e.node)}`);
          } finally {
            closeFd(ours);
          }
        }
      } finally {
        closeFd(pidfd);
      }
      assert.equal(masters.length, 2, 'one master per pane');
      for (const p of panes) {
        const [pidS, tty, size] = p.split(' ');
        const pid = Number(pidS);
        const m = masters.find((e) => `/dev/pts/${e.index}` === tty);
        assert.ok(m, `the master of ${tty} is in the server`);
        assert.equal(m.sid, pid, `${tty}: the pane's shell leads the session it controls`);
        assert.equal(statTty(pid).ttyNr, fs.statSync(tty!).rdev, `${tty}: the shell's controlling tty`);
        assert.equal(m.pgrp, statTty(pid).tpgid, `${tty}: foreground group as the shell's /proc stat says`);
        assert.equal(`${m.winsize.col}x${m.winsize.row}`, size, `${tty}: window size as tmux says`);
      }
    } finally {
      await kill();
    }
  });
});
