// Dump and restore times of the busybox container of test/c-r-mnt (mount, PID, UTS and IPC
// namespaces of its own; proc, tmpfs, /dev tmpfs, devpts, mqueue, sysfs, binds, an overmount;
// a shell counter and busybox httpd), through the CLI, with the ptrace stops and the mount step
// of each. Prints figures; asserts nothing about time.
//   node dist/bench/container.js [--runs N]     (as root, busybox-static installed)
import * as fs from 'node:fs';
import {
  cryo, cryoReport, cleanup, startContainer, killContainers, busyboxIsStatic, counter, httpGet, waitFor, pidExists, descendants,
} from '../test/lib/index.js';

const runsArg = process.argv.indexOf('--runs');
const runs = runsArg > 0 ? Number(process.argv[runsArg + 1]) : 3;

const stepMs = (log: string, step: string) => Number(new RegExp(`step ${step}: ([\\d.]+) ms`).exec(log)?.[1] ?? NaN);
const stops = (log: string) => Number(/(\d+) ptrace stops/.exec(log)?.[1] ?? NaN);
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

async function once(i: number): Promise<{ dump: number; restore: number; dumpMounts: number; restoreMounts: number; stopsD: number; stopsR: number }> {
  const c = await startContainer();
  const pids = descendants(c.t.pid);
  const dir = `${c.base}/img`;
  fs.mkdirSync(dir, { mode: 0o700 });
  const d = cryo(['dump', '-t', String(c.t.pid), '-D', dir, '-v4', '-o', `${c.base}/dump.log`]);
  if (d.code !== 0) throw new Error(`dump ${i} failed\n${cryoReport(d)}`);
  for (const p of [c.unshare.pid, ...pids]) await waitFor(() => !pidExists(p), 10_000);
  const r = cryo(['restore', '-D', dir, '-d', '-v4', '-o', `${c.base}/restore.log`]);
  if (r.code !== 0) throw new Error(`restore ${i} failed\n${cryoReport(r)}`);
  const n = counter(c.t.pid);
  if (!(await waitFor(() => counter(c.t.pid) > n, 10_000)) || !(await httpGet(c.port)).includes(c.token)) throw new Error('the restored container does not run');
  const dl = fs.readFileSync(`${c.base}/dump.log`, 'utf8');
  const rl = fs.readFileSync(`${c.base}/restore.log`, 'utf8');
  killContainers();
  return { dump: d.ms, restore: r.ms, dumpMounts: stepMs(dl, 'mounts'), restoreMounts: stepMs(rl, 'mounts'), stopsD: stops(dl), stopsR: stops(rl) };
}

if (!busyboxIsStatic()) {
  console.log('/bin/busybox is not the static one (Debian busybox-static): skipping the container benchmark');
} else {
  const all = [];
  try {
    for (let i = 0; i < runs; i++) {
      const x = await once(i);
      all.push(x);
      console.log(`run ${i + 1}: dump ${x.dump.toFixed(0)} ms (mounts ${x.dumpMounts.toFixed(1)} ms, ${x.stopsD} ptrace stops), restore ${x.restore.toFixed(0)} ms (mounts ${x.restoreMounts.toFixed(1)} ms, ${x.stopsR} ptrace stops)`);
    }
    console.log(`container (${runs} runs, medians, CLI wall time incl. node start): dump ${median(all.map((x) => x.dump)).toFixed(0)} ms, restore ${median(all.map((x) => x.restore)).toFixed(0)} ms; mount step: dump ${median(all.map((x) => x.dumpMounts)).toFixed(1)} ms, restore ${median(all.map((x) => x.restoreMounts)).toFixed(1)} ms`);
  } finally {
    killContainers();
    await cleanup();
  }
}
