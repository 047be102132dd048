// Credentials survive a checkpoint: every combination a real process has (uids/gids in all four
// slots, supplementary groups, the five capability sets, securebits with and without their lock
// bits, keep-caps, no_new_privs), each set up by a target that checks after restore that the
// kernel shows it exactly as before the dump. Plus the real `setpriv` case from the bug report.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { after, describe, it } from 'node:test';
import {
  buildTarget, checkImages, cleanup, cryoReport, dump, expectPass, makeTempDir, restore, startTarget, statusField,
  targetReport, trackPid, waitFor, waitForLine, waitPidGone, type Target,
} from './lib/index.js';

// Every capability we hold (this VM's root lacks CAP_SYS_RESOURCE, for one).
const ALL = BigInt('0x' + statusField(process.pid, 'CapBnd'));
const cap = (...n: number[]) => n.reduce((m, c) => m | (1n << BigInt(c)), 0n);
const hex = (v: bigint) => v.toString(16);
const CAP = { CHOWN: 0, DAC_OVERRIDE: 1, KILL: 5, SETGID: 6, SETUID: 7, SETPCAP: 8, NET_BIND_SERVICE: 10, NET_RAW: 13, SYS_ADMIN: 21, SYS_NICE: 23 };
// securebits
const SB = { NOROOT: 1, NOROOT_LOCKED: 2, NO_SETUID_FIXUP: 4, NO_SETUID_FIXUP_LOCKED: 8, KEEP_CAPS: 16, KEEP_CAPS_LOCKED: 32, NO_AMBIENT_RAISE: 64, NO_AMBIENT_RAISE_LOCKED: 128 };
const CRED_FIELDS = ['Uid', 'Gid', 'Groups', 'CapInh', 'CapPrm', 'CapEff', 'CapBnd', 'CapAmb', 'NoNewPrivs'];

const CASES: { name: string; args: string[] }[] = [
  {
    // What `setpriv --bounding-set=-all --inh-caps=-all` leaves: root without any capability.
    name: 'uid 0 without any capability (empty bounding, permitted, effective, inheritable)',
    args: [`bnd=0`, 'prm=0', 'eff=0', 'inh=0'],
  },
  {
    name: 'an ordinary user: uid/gid 1000, groups, no capabilities, full bounding set',
    args: ['uid=1000,1000,1000,1000', 'gid=1000,1000,1000,1000', 'groups=1000,27,100', 'prm=0', 'eff=0', 'inh=0'],
  },
  {
    name: 'real, effective, saved and fs ids all different, no groups',
    args: ['uid=1000,1001,1002,1003', 'gid=2000,2001,2002,2003', 'groups=none', 'prm=0', 'eff=0', 'inh=0'],
  },
  {
    name: 'uid 1000 with ambient capabilities (NET_BIND_SERVICE, NET_RAW)',
    args: ['uid=1000,1000,1000,1000', 'gid=1000,1000,1000,1000', 'groups=1000',
      `prm=${hex(cap(CAP.NET_BIND_SERVICE, CAP.NET_RAW))}`, `eff=${hex(cap(CAP.NET_BIND_SERVICE))}`,
      `inh=${hex(cap(CAP.NET_BIND_SERVICE, CAP.NET_RAW))}`, `amb=${hex(cap(CAP.NET_BIND_SERVICE, CAP.NET_RAW))}`],
  },
  {
    name: 'uid 1000 with keep-caps, some permitted capabilities and an inheritable one outside the bounding set',
    args: ['uid=1000,1000,1000,1000', 'gid=1000,1000,1000,1000', 'groups=none', `secbits=${SB.KEEP_CAPS}`,
      `bnd=${hex(ALL & ~cap(CAP.SYS_ADMIN))}`, `prm=${hex(cap(CAP.KILL, CAP.SETUID, CAP.CHOWN))}`, `eff=${hex(cap(CAP.KILL))}`,
      `inh=${hex(cap(CAP.SYS_ADMIN, CAP.KILL))}`],
  },
  {
    name: 'root with every securebit set and locked, a reduced bounding set and effective set',
    args: [`secbits=${SB.NOROOT | SB.NOROOT_LOCKED | SB.NO_SETUID_FIXUP | SB.NO_SETUID_FIXUP_LOCKED | SB.KEEP_CAPS | SB.KEEP_CAPS_LOCKED | SB.NO_AMBIENT_RAISE | SB.NO_AMBIENT_RAISE_LOCKED}`,
      `bnd=${hex(ALL & ~cap(CAP.SYS_ADMIN, CAP.SETPCAP, CAP.SYS_NICE))}`, `prm=${hex(ALL & ~cap(CAP.SYS_ADMIN, CAP.SETPCAP))}`,
      `eff=${hex(cap(CAP.DAC_OVERRIDE, CAP.KILL))}`, 'inh=0'],
  },
  {
    name: 'uid 1000 with only the lock bits set (values clear) and no_new_privs',
    args: ['uid=1000,1000,1000,1000', 'gid=1000,1000,1000,1000', 'groups=1000', `secbits=${SB.NOROOT_LOCKED | SB.KEEP_CAPS_LOCKED}`,
      'prm=0', 'eff=0', 'inh=0', 'nnp=1'],
  },
  {
    name: 'root with no_new_privs and a cleared ambient-raise bit locked',
    args: [`secbits=${SB.NO_AMBIENT_RAISE | SB.NO_AMBIENT_RAISE_LOCKED}`, 'nnp=1'],
  },
];

/** The credential lines of /proc/PID/status, as seen from outside. */
function credLines(pid: number): string {
  return CRED_FIELDS.map((f) => `${f}: ${statusField(pid, f)}`).join('\n');
}

/** The target's real uid must find the go file: let everyone search its directories. */
function searchable(t: { root: string; dir: string }): void {
  fs.chmodSync(t.root, 0o711);
  fs.chmodSync(t.dir, 0o711);
}

async function dumpRestore(t: Target): Promise<void> {
  const d = dump(t, '1');
  assert.equal(d.res.code, 0, `dump failed\n${cryoReport(d.res)}\n${targetReport(t)}`);
  await checkImages(d.dir, t.pid);
  assert.ok(await waitPidGone(t.pid), `pid ${t.pid} still exists after the dump`);
  const r = restore(t, d.dir, '1');
  assert.equal(r.res.code, 0, `restore failed\n${cryoReport(r.res)}\n${targetReport(t)}`);
  assert.equal(r.pidFromFile, t.pid);
}

describe('credentials: every combination is restored exactly', { concurrency: false }, () => {
  after(cleanup);
  for (const c of CASES) {
    it(c.name, { timeout: 60_000 }, async () => {
      const t = await startTarget([buildTarget('creds'), ...c.args], { name: 'creds' });
      searchable(t);
      await waitForLine(t, 'READY', 10_000);
      const before = credLines(t.pid);
      await dumpRestore(t);
      assert.equal(credLines(t.pid), before, 'credentials seen from /proc after restore');
      await expectPass(t);
    });
  }

  it('setpriv --bounding-set=-all --inh-caps=-all sleep 1000 (the reported case) comes back with its creds', { timeout: 60_000 }, async () => {
    const root = makeTempDir('cryo-t-setpriv-');
    const dir = path.join(root, 'cwd');
    fs.mkdirSync(dir);
    const log = fs.openSync(path.join(dir, 'target.log'), 'a', 0o644);
    const argv = ['/usr/bin/setpriv', '--bounding-set=-all', '--inh-caps=-all', '/usr/bin/sleep', '1000'];
    const child = spawn(buildTarget('launch'), argv, { cwd: dir, detached: true, stdio: ['ignore', log, log] });
    fs.closeSync(log);
    const pid = await new Promise<number>((res, rej) => child.once('spawn', () => res(child.pid!)).once('error', rej));
    child.unref();
    trackPid(pid, ['/usr/bin/sleep', '1000'], root);
    assert.ok(await waitFor(() => fs.existsSync(`/proc/${pid}/exe`) && fs.readlinkSync(`/proc/${pid}/exe`) === '/usr/bin/sleep', 5000), 'sleep did not start');
    assert.equal(statusField(pid, 'CapBnd'), '0000000000000000');
    assert.equal(statusField(pid, 'CapEff'), '0000000000000000');
    const t: Target = { name: 'setpriv-sleep', pid, argv: ['/usr/bin/sleep', '1000'], root, dir, logPath: path.join(dir, 'target.log'), log: () => '' };
    const before = credLines(pid);
    await dumpRestore(t);
    assert.equal(credLines(pid), before, 'credentials seen from /proc after restore');
    const state = fs.readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ')[0];
    assert.ok(state === 'S' || state === 'R', `restored sleep runs (state ${state})`);
  });
});
