// The TCP part of a dump's frozen time, for a process holding N established connections (both
// ends in it, test/targets/tcpmany.c): lock the network for all of them, dump every socket in
// repair mode, then recreate every one and leave repair mode, and unlock. Each recreated end
// then reads the 1000 bytes its peer had queued, to show the figures are for working sockets.
// Prints figures; asserts nothing about time.   node dist/bench/tcp-repair.js [connections]
import { buildTarget, startTarget, waitForLine, killTarget, cleanup } from '../test/lib/index.js';
import { AF, pidfdOpen, pidfdGetfd, closeFd, sysTry, MSG } from '../src/sys/index.js';
import { inspectInet } from '../src/resources/files/inet.js';
import { dumpTcpConnection, createTcpConnection, leaveRepair, releaseRepair, type TcpConnectionRecord } from '../src/resources/net/tcp-repair.js';
import { lockNetwork, type NetworkLock } from '../src/resources/net/netlock.js';

const n = Number(process.argv[2] ?? 1000);
const t = await startTarget([buildTarget('tcpmany'), String(n)], { name: 'tcpmany' });
const dups: number[] = [];
const fresh: number[] = [];
let lock: NetworkLock | null = null;
const ms = (t0: number) => (performance.now() - t0).toFixed(1);
try {
  const ready = await waitForLine(t, 'READY', 120_000);
  const first = Number(/first=(\d+)/.exec(ready)![1]);
  const pidfd = pidfdOpen(t.pid);
  for (let i = 0; i < 2 * n; i++) dups.push(pidfdGetfd(pidfd, first + i));
  closeFd(pidfd);
  const tuples = [];
  for (let i = 0; i < n; i++) {
    const c = inspectInet(dups[2 * i]!, AF.INET);
    tuples.push({ src: c.src, dst: c.dst! });
  }
  let t0 = performance.now();
  lock = lockNetwork('nftables', tuples);
  const tLock = ms(t0);
  t0 = performance.now();
  const recs: TcpConnectionRecord[] = dups.map((fd, i) => dumpTcpConnection(fd, AF.INET, { ino: i + 1 }));
  const tDump = ms(t0);
  process.kill(t.pid, 'SIGUSR2');
  await waitForLine(t, 'CLOSED', 60_000);
  for (const d of dups.splice(0)) closeFd(d);
  t0 = performance.now();
  for (const r of recs) fresh.push(createTcpConnection(r));
  for (const [k, f] of fresh.entries()) leaveRepair(f, recs[k]!);
  const tCreate = ms(t0);
  t0 = performance.now();
  lock.release();
  lock = null;
  const tUnlock = ms(t0);
  let bad = 0;
  const buf = Buffer.alloc(1000);
  for (const [k, f] of fresh.entries()) {
    // End k holds what its peer wrote: byte (k ^ 1) & 0xff, 1000 times.
    const r = sysTry('recvfrom', [f, buf, buf.length, MSG.DONTWAIT, 0, 0]);
    if (r.ret !== 1000 || buf.some((b) => b !== ((k ^ 1) & 0xff))) bad++;
  }
  console.log(`${n} connections (${2 * n} sockets): lock ${tLock} ms, dump ${tDump} ms, recreate + leave repair ${tCreate} ms, unlock ${tUnlock} ms; ${bad} ends without their data`);
} finally {
  for (const d of dups) {
    releaseRepair(d, false);
    closeFd(d);
  }
  for (const f of fresh) closeFd(f);
  lock?.release();
  killTarget(t);
  await cleanup();
}
