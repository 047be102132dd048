// Time frozen, dump and restore of a process holding N established TCP connections (both ends
// in it: 2N sockets, each with 1000 unread bytes; test/targets/tcpmany.c), through the CLI with
// --tcp-established, beside the same process with one connection. After the restore the
// connections are counted ESTABLISHED again in /proc/net/tcp. Prints figures; asserts nothing
// about time.   node dist/bench/tcp-connections.js [N ...]     (as root, nft installed)
import * as fs from 'node:fs';
import * as path from 'node:path';
import { buildTarget, startTarget, waitForLine, killTarget, cleanup, cryo, cryoReport, waitPidGone, type Target } from '../test/lib/index.js';

interface Timed {
  timings: { totalMs: number; frozenMs?: number; phases: Record<string, number> };
  verdict: string;
}

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

async function once(n: number): Promise<void> {
  const t: Target = await startTarget([buildTarget('tcpmany'), String(n)], { name: 'tcpmany' });
  try {
    await waitForLine(t, 'READY', 120_000);
    const dir = path.join(t.root, 'img');
    fs.mkdirSync(dir, { mode: 0o700 });
    const d = json(cryo(['dump', '-t', String(t.pid), '-D', dir, '--tcp-established', '--json'], { timeoutMs: 300_000 }), 'dump');
    await waitPidGone(t.pid, 30_000);
    const r = json(cryo(['restore', '-D', dir, '-d', '--tcp-established', '--json'], { timeoutMs: 300_000 }), 'restore');
    const up = established(t.pid);
    if (process.env.CRYO_BENCH_PHASES) console.log(JSON.stringify({ dump: d.timings.phases, restore: r.timings.phases }));
    process.kill(t.pid, 'SIGUSR2');
    await waitForLine(t, 'CLOSED', 60_000);
    const p = (o: Timed, k: string) => (o.timings.phases[k] ?? 0).toFixed(0);
    console.log(
      `${String(n).padStart(5)} connections: frozen ${d.timings.frozenMs?.toFixed(0)} ms, dump ${d.timings.totalMs.toFixed(0)} ms ` +
        `(guard start ${p(d, 'tcp guard')}, lock ${p(d, 'lock network')}, collect ${p(d, 'collect')}), ` +
        `restore ${r.timings.totalMs.toFixed(0)} ms (lock ${p(r, 'lock network')}, sockets ${p(r, 'shared objects')}, resume ${p(r, 'resume')}); ` +
        `${up} of ${2 * n} sockets ESTABLISHED after the restore`,
    );
  } finally {
    killTarget(t);
  }
}

const counts = process.argv.slice(2).map(Number).filter((x) => x > 0);
try {
  for (const n of counts.length ? counts : [1, 1000]) await once(n);
} finally {
  await cleanup();
}
