// Time frozen, dump and restore of a process holding N established TCP connections, through the
// CLI with --tcp-established (test/targets/tcpmany.c): with both ends in it (2N sockets, each
// with 1000 unread bytes), and as N clients of a server outside the tree (this process: the
// server's ends stay open and unread across the dump and restore, the peer never leaves). After
// the restore the target's connections are counted ESTABLISHED again in /proc/net/tcp, and the
// outside server's are checked still open. Prints figures; asserts nothing about time.
//   node dist/bench/tcp-connections.js [N ...]     (as root, nft installed; default 1 1000)
//   CRYO_BENCH_PHASES=1: every phase of both, as JSON
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as path from 'node:path';
import { buildTarget, startTarget, waitForLine, killTarget, cleanup, cryo, cryoReport, waitPidGone, type Target } from '../test/lib/index.js';

interface Timed {
  timings: { totalMs: number; frozenMs?: number; phases: Record<string, number> };
  verdict: string;
}

type Mode = 'pair' | 'outside';

/** The target's sockets that /proc/net/tcp shows ESTABLISHED (state 01). */
function established(pid: number): number {
  const inodes = new Set<string>();
  for (const n of fs.readdirSync(`/proc/${pid}/fd`)) {
    const m = /^socket:\[(\d+)\]$/.exec(fs.readlinkSync(`/proc/${pid}/fd/${n}`));
    if (m) inodes.add(m[1]!);
  }
  let count = 0;
  for (const line of fs.readFileSync('/proc/net/tcp', 'utf8').split('\n').slice(1)) {
    const w = line.trim().split(/\s+/);
    if (w[3] === '01' && inodes.has(w[9]!)) count++;
  }
  return count;
}

function json(r: ReturnType<typeof cryo>, what: string): Timed {
  const out = JSON.parse(r.stdout) as Timed;
  if (out.verdict !== 'done') throw new Error(`${what}: ${cryoReport(r)}`);
  return out;
}

/** A server that accepts and holds its clients without reading them (their bytes stay queued). */
async function holdingServer(): Promise<{ port: number; open: () => number; close: () => void }> {
  const socks = new Set<net.Socket>();
  const srv = net.createServer({ pauseOnConnect: true }, (s) => {
    socks.add(s);
    s.on('close', () => socks.delete(s)).on('error', () => socks.delete(s));
  });
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', 4096, r));
  return {
    port: (srv.address() as net.AddressInfo).port,
    open: () => socks.size,
    close: () => {
      for (const s of socks) s.destroy();
      srv.close();
    },
  };
}

async function once(n: number, mode: Mode): Promise<void> {
  const server = mode === 'outside' ? await holdingServer() : null;
  const t: Target = await startTarget([buildTarget('tcpmany'), String(n), ...(server ? [String(server.port)] : [])], { name: `tcpmany-${mode}` });
  try {
    await waitForLine(t, 'READY', 120_000);
    // Every connection accepted before the dump: cryo runs synchronously, this loop then waits.
    for (const end = Date.now() + 60_000; server && server.open() < n && Date.now() < end; ) await new Promise((r) => setTimeout(r, 10));
    if (server && server.open() < n) throw new Error(`the server accepted ${server.open()} of ${n} connections`);
    const dir = path.join(t.root, 'img');
    fs.mkdirSync(dir, { mode: 0o700 });
    const d = json(cryo(['dump', '-t', String(t.pid), '-D', dir, '--tcp-established', '--json'], { timeoutMs: 300_000 }), 'dump');
    await waitPidGone(t.pid, 30_000);
    const r = json(cryo(['restore', '-D', dir, '-d', '--tcp-established', '--json'], { timeoutMs: 300_000 }), 'restore');
    const up = established(t.pid);
    const sockets = mode === 'pair' ? 2 * n : n;
    if (process.env.CRYO_BENCH_PHASES) console.log(JSON.stringify({ dump: d.timings.phases, restore: r.timings.phases }));
    const p = (o: Timed, k: string) => (o.timings.phases[k] ?? 0).toFixed(0);
    const peer = server ? `, the outside server's ${server.open()} of ${n} still open` : '';
    console.log(
      `${String(n).padStart(5)} connections, ${mode === 'pair' ? 'both ends in the tree' : 'server outside      '}: ` +
        `frozen ${d.timings.frozenMs?.toFixed(0)} ms (lock ${p(d, 'lock network')}, collect ${p(d, 'collect')}, write ${p(d, 'write')}), ` +
        `dump ${d.timings.totalMs.toFixed(0)} ms (guard start ${p(d, 'tcp guard')}, tcp-stream images made before the freeze ${p(d, 'reserve images')}); ` +
        `restore ${r.timings.totalMs.toFixed(0)} ms (lock ${p(r, 'lock network')}, sockets ${p(r, 'shared objects')}, verify ${p(r, 'verify')}, resume ${p(r, 'resume')}); ` +
        `${up} of ${sockets} sockets ESTABLISHED after the restore${peer}`,
    );
    process.kill(t.pid, 'SIGUSR2');
    await waitForLine(t, 'CLOSED', 60_000);
  } finally {
    killTarget(t);
    server?.close();
  }
}

const counts = process.argv.slice(2).map(Number).filter((x) => x > 0);
try {
  for (const n of counts.length ? counts : [1, 1000]) for (const mode of ['pair', 'outside'] as const) await once(n, mode);
} finally {
  await cleanup();
}
