// Helpers of the TCP checkpoint tests (c-r-tcp.test.ts, tcp-safety.test.ts): cryo's network
// locks present in nftables, the repair mode of a live process's TCP sockets, and starting the
// tcpstream.c target in its modes.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import { AF, SOL, SO, getsockoptInt, pidfdOpen, pidfdGetfd, closeFd, tcpRepairOn } from '../../src/sys/index.js';
import { buildTarget } from './build.js';
import { cryoPids } from './cryo.js';
import { startTarget, waitForLine, type Target } from './target.js';
import { descendants } from './tree.js';

/**
 * Names of the nftables tables of the cryo processes this test process started (cryo-... while
 * a dump runs, cryoh-... kept for a restore; named after the PID of the cryo that made it).
 * Other engineers' cryo runs make tables of their own at the same time: those are not listed.
 */
export function cryoTables(): string[] {
  const r = spawnSync('nft', ['list', 'tables'], { encoding: 'utf8' });
  assert.equal(r.status, 0, `nft list tables: ${r.stderr}`);
  return [...r.stdout.matchAll(/^table inet (cryoh?-(\d+)-\S+)$/gm)].filter((m) => cryoPids.has(Number(m[2]))).map((m) => m[1]!);
}

/** The fds of `pid` that are TCP sockets in repair mode (none, for a healthy process). */
export function socketsInRepair(pid: number): number[] {
  const out: number[] = [];
  let pidfd: number;
  try {
    pidfd = pidfdOpen(pid);
  } catch {
    return out; // gone
  }
  try {
    for (const name of fs.readdirSync(`/proc/${pid}/fd`)) {
      let link = '';
      try {
        link = fs.readlinkSync(`/proc/${pid}/fd/${name}`);
      } catch {
        continue;
      }
      if (!link.startsWith('socket:')) continue;
      const fd = pidfdGetfd(pidfd, Number(name));
      try {
        const family = getsockoptInt(fd, SOL.SOCKET, SO.DOMAIN);
        if ((family === AF.INET || family === AF.INET6) && getsockoptInt(fd, SOL.SOCKET, SO.PROTOCOL) === 6 && tcpRepairOn(fd)) out.push(Number(name));
      } finally {
        closeFd(fd);
      }
    }
  } finally {
    closeFd(pidfd);
  }
  return out;
}

/** tcpstream.c in pair mode (server and client in one tree): the target and the client's PID. */
export async function startPair(family: '4' | '6'): Promise<{ t: Target; client: number }> {
  const t = await startTarget([buildTarget('tcpstream'), family, 'pair'], { name: `tcpstream${family}` });
  await waitForLine(t, 'READY', 60_000);
  const kids = descendants(t.pid).filter((p) => p !== t.pid);
  assert.equal(kids.length, 1, `one client process under ${t.pid}: ${kids.join(', ')}`);
  return { t, client: kids[0]! };
}

/** A tcpstream server outside any dumped tree, and a client of it (the target to dump). */
export async function startOutside(family: '4' | '6'): Promise<{ server: Target; client: Target }> {
  const server = await startTarget([buildTarget('tcpstream'), family, 'serve'], { name: `tcpserve${family}` });
  const client = await startTarget([buildTarget('tcpstream'), family, 'connect', String(await portOf(server))], { name: `tcpclient${family}` });
  await waitForLine(client, 'READY', 60_000);
  await waitForLine(server, 'READY', 60_000);
  return { server, client };
}

async function portOf(server: Target): Promise<number> {
  // The server says its port only with READY, which needs a client: it listens from the start.
  for (let i = 0; i < 500; i++) {
    const m = /port=(\d+)/.exec(server.log());
    if (m) return Number(m[1]);
    const port = listeningPort(server.pid);
    if (port) return port;
    await new Promise((r) => setTimeout(r, 10));
  }
  throw new Error(`tcpstream serve ${server.pid} never listened\n${server.log()}`);
}

/** The port `pid` listens on, from /proc/net/tcp{,6} (state 0A) and its socket inodes. */
function listeningPort(pid: number): number | null {
  const inodes = new Set<string>();
  try {
    for (const n of fs.readdirSync(`/proc/${pid}/fd`)) {
      const m = /^socket:\[(\d+)\]$/.exec(fs.readlinkSync(`/proc/${pid}/fd/${n}`));
      if (m) inodes.add(m[1]!);
    }
  } catch {
    return null;
  }
  for (const f of ['/proc/net/tcp', '/proc/net/tcp6']) {
    for (const line of fs.readFileSync(f, 'utf8').split('\n').slice(1)) {
      const w = line.trim().split(/\s+/);
      if (w[3] === '0A' && inodes.has(w[9]!)) return parseInt(w[1]!.split(':')[1]!, 16);
    }
  }
  return null;
}

/**
 * For after(): removes the locks of this test's cryo runs that appeared since `before` (a failed
 * test may leave a kill-dump's lock); returns their names. Nobody else's are touched.
 */
export function removeNewTables(before: string[]): string[] {
  const extra = cryoTables().filter((n) => !before.includes(n));
  for (const n of extra) spawnSync('nft', ['delete', 'table', 'inet', n]);
  return extra;
}
