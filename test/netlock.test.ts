// The network lock on real connections: a locked tuple's packets are dropped (a connect stays in
// SYN_SENT while the lock counts its SYNs) and pass again once it is released; a table whose
// owner was killed is swept, a live owner's is not; the --network-lock modes.
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { describe, it } from 'node:test';
import { waitFor } from './lib/index.js';
import {
  AF, SOCK, IPPROTO, TCP_STATE, E, sysTry, socket, bind, listen, encodeInetAddr, decodeInetAddr, getsockname, closeFd, tcpInfoHead,
} from '../src/sys/index.js';
import { lockNetwork, adoptLock, listLocks, sweepLeftovers, parseNetworkLockMode, type NetworkLock } from '../src/resources/net/netlock.js';

/** A nonblocking TCP socket of ours bound to a free loopback port. */
function boundSocket(af: number): { fd: number; port: number } {
  const fd = socket(af, SOCK.STREAM | SOCK.NONBLOCK, IPPROTO.TCP);
  bind(fd, loopback(af, 0), 'bind');
  return { fd, port: decodeInetAddr(getsockname(fd)).port };
}

function loopback(af: number, port: number): Buffer {
  const addr = af === AF.INET ? Buffer.from([127, 0, 0, 1]) : Buffer.from('00000000000000000000000000000001', 'hex');
  return encodeInetAddr({ family: af, port, addr });
}

/** Packets the lock's drop rules have counted, from `nft list table`. */
function droppedPackets(name: string): number {
  const r = spawnSync('nft', ['list', 'table', 'inet', name], { encoding: 'utf8' });
  assert.equal(r.status, 0, r.stderr);
  return [...r.stdout.matchAll(/counter packets (\d+)/g)].reduce((n, m) => n + Number(m[1]), 0);
}

describe('network lock', () => {
  for (const af of [AF.INET, AF.INET6]) {
    it(`drops the locked ${af === AF.INET ? 'IPv4' : 'IPv6'} tuple (a connect stays in SYN_SENT) and lets it through once released`, async () => {
      const server = boundSocket(af);
      const client = boundSocket(af);
      let lock: NetworkLock | null = null;
      try {
        listen(server.fd, 4, 'listen');
        lock = lockNetwork('nftables', [{ src: decodeInetAddr(loopback(af, client.port)), dst: decodeInetAddr(loopback(af, server.port)) }]);
        assert.ok(listLocks().some((l) => l.name === lock!.name), 'the table is in the firewall');
        const r = sysTry('connect', [client.fd, loopback(af, server.port), af === AF.INET ? 16 : 28]);
        assert.equal(r.errno, E.EINPROGRESS);
        // Loopback answers a SYN at once: a SYN that was counted and not answered was dropped.
        assert.ok(await waitFor(() => droppedPackets(lock!.name) > 0, 30_000, 50), 'the lock counted the SYN');
        assert.equal(tcpInfoHead(client.fd).state, TCP_STATE.SYN_SENT, 'the handshake did not go through');
        lock.release();
        assert.ok(!listLocks().some((l) => l.name === lock!.name), 'the table is gone after release');
        lock.release(); // twice is harmless
        lock = null;
        // The kernel retransmits the SYN (after 1 s, 3 s, ...): now it passes.
        assert.ok(await waitFor(() => tcpInfoHead(client.fd).state === TCP_STATE.ESTABLISHED, 60_000, 50), 'connected after release');
      } finally {
        lock?.release();
        closeFd(client.fd);
        closeFd(server.fd);
      }
    });
  }

  it('sweepLeftovers removes the table of a cryo run killed with SIGKILL, and only that one', async () => {
    const mine = lockNetwork('nftables', []);
    const script = `import { lockNetwork } from ${JSON.stringify(new URL('../src/resources/net/netlock.js', import.meta.url).href)};
      const l = lockNetwork('nftables', []); console.log('LOCKED ' + l.name); setInterval(() => {}, 1000);`;
    const child = spawn(process.execPath, ['--input-type=module', '-e', script], { stdio: ['ignore', 'pipe', 'inherit'] });
    try {
      const name = await new Promise<string>((resolve, reject) => {
        let out = '';
        child.stdout!.on('data', (d: Buffer) => {
          out += d.toString();
          const m = /LOCKED (\S+)/.exec(out);
          if (m) resolve(m[1]!);
        });
        child.once('exit', (code) => reject(new Error(`the locking process exited (${code}) before locking: ${out}`)));
      });
      assert.match(name, new RegExp(`^cryo-${child.pid}-\\d+-0$`));
      assert.deepEqual(sweepLeftovers().filter((n) => n === name || n === mine.name), [], 'a live run keeps its lock');
      process.kill(child.pid!, 'SIGKILL');
      await new Promise((resolve) => (child.exitCode !== null || child.signalCode !== null ? resolve(null) : child.once('exit', resolve)));
      assert.ok(listLocks().some((l) => l.name === name), 'SIGKILL left the table behind');
      const removed = sweepLeftovers();
      assert.ok(removed.includes(name), `swept: ${removed.join(', ')}`);
      assert.ok(!removed.includes(mine.name), 'our own live lock is not swept');
      const left = listLocks().map((l) => l.name);
      assert.ok(!left.includes(name) && left.includes(mine.name), `left: ${left.join(', ')}`);
    } finally {
      if (child.exitCode === null && child.signalCode === null) process.kill(child.pid!, 'SIGKILL');
      mine.release();
    }
  });

  it('a lock held for the restore outlives its process and the sweep; the restore adopts and removes it', async () => {
    const script = `import { lockNetwork } from ${JSON.stringify(new URL('../src/resources/net/netlock.js', import.meta.url).href)};
      const l = lockNetwork('nftables', [], { heldForRestore: true }); const gone = lockNetwork('nftables', []);
      l.keep(); console.log('LOCKED ' + l.name + ' ' + gone.name);`;
    const r = spawnSync(process.execPath, ['--input-type=module', '-e', script], { encoding: 'utf8' });
    assert.equal(r.status, 0, r.stderr);
    const [, kept, notKept] = /LOCKED (\S+) (\S+)/.exec(r.stdout)!;
    assert.match(kept!, /^cryoh-/);
    let names = listLocks().map((l) => l.name);
    assert.ok(!names.includes(notKept!), 'an ordinary lock is released when its process exits');
    try {
      assert.ok(listLocks().some((l) => l.name === kept && l.heldForRestore), `kept: ${names.join(', ')}`);
      assert.ok(!sweepLeftovers().includes(kept!), 'the sweep leaves a held lock');
      assert.throws(() => adoptLock('nftables', notKept!), /not the name of a network lock cryo keeps/);
      adoptLock('nftables', kept!).release();
      names = listLocks().map((l) => l.name);
      assert.ok(!names.includes(kept!), 'released by the restore');
    } finally {
      if (listLocks().some((l) => l.name === kept)) spawnSync('nft', ['delete', 'table', 'inet', kept!]);
    }
    const plain = lockNetwork('nftables', []);
    assert.throws(() => plain.keep(), /not made to outlive/);
    plain.release();
  });

  it('--network-lock takes nftables, iptables or skip; skip locks nothing; iptables needs its tools', () => {
    assert.deepEqual(['nftables', 'iptables', 'skip'].map(parseNetworkLockMode), ['nftables', 'iptables', 'skip']);
    assert.throws(() => parseNetworkLockMode('nft'), /must be one of nftables, iptables, skip/);
    const before = listLocks().length;
    const skip = lockNetwork('skip', []);
    assert.equal(listLocks().length, before);
    skip.release();
    const hasIptables = spawnSync('iptables', ['-w', '-S'], { encoding: 'utf8' }).status === 0;
    if (hasIptables) {
      const l = lockNetwork('iptables', []);
      assert.ok(listLocks().some((x) => x.name === l.name));
      l.release();
      assert.ok(!listLocks().some((x) => x.name === l.name));
    } else {
      assert.throws(() => lockNetwork('iptables', []), /cannot lock the network with iptables/);
      assert.equal(listLocks().length, before, 'a refused lock leaves nothing');
    }
  });
});
