// The ns helper: a short-lived Node process that enters a task's IPC and/or UTS namespace
// (setns on its main thread, where every call below runs) and reads or rebuilds what is in it.
// cryo itself never calls setns: its own namespaces must stay the host's for everything else it
// does, and setns is per thread while Node runs several. Injecting the calls into the target
// instead would mean buffers in its memory for every message and segment; a helper reuses the
// same code that serves the host namespace (sysv-shm.ts).
//
//   node helper.js dump PID uts,ipc      -> stdout: NsState as JSON
//   node helper.js restore PID uts,ipc   <- stdin: NsState; -> stdout: {shmIds: [[old, new]...]}
//   node helper.js rmshm PID id...       removes segments (removed before the dump) again
//   node helper.js cgroup PID            -> stdout: /proc/PID/cgroup as PID's cgroup namespace shows it
import { openSync, closeSync, readFileSync } from 'node:fs';
import { sys, CLONE } from '../../sys/index.js';
import { dumpAllSegments, createSegment, removeSegment, type ShmImage } from '../mm/sysv-shm.js';
import { dumpUts, restoreUts } from './uts.js';
import { dumpIpcVars, restoreIpcLimits, restoreIpcNextIds } from './ipc-vars.js';
import { dumpSemSets, dumpMsgQueues, restoreSemSet, restoreMsgQueue } from './ipc-objects.js';
import { type NsState, type ShmJson } from './state.js';

function enter(pid: number, kind: 'ipc' | 'uts'): void {
  const fd = openSync(`/proc/${pid}/ns/${kind}`, 'r');
  try {
    sys('setns', [fd, kind === 'ipc' ? CLONE.NEWIPC : CLONE.NEWUTS], `${kind} namespace of pid ${pid}`);
  } finally {
    closeSync(fd);
  }
}

const shmToJson = (g: ShmImage): ShmJson => ({ desc: g.entry.desc, size: g.entry.size.toString(), data: g.data.toString('base64') });
const shmFromJson = (g: ShmJson): ShmImage => ({ entry: { desc: g.desc, size: BigInt(g.size) }, data: Buffer.from(g.data, 'base64') });

function dump(kinds: string[]): NsState {
  const out: NsState = {};
  if (kinds.includes('uts')) out.uts = dumpUts();
  if (kinds.includes('ipc')) out.ipc = { vars: dumpIpcVars(), sems: dumpSemSets(), msgs: dumpMsgQueues(), shms: dumpAllSegments().map(shmToJson) };
  return out;
}

function restore(kinds: string[], s: NsState): { shmIds: [number, number][] } {
  if (kinds.includes('uts') && s.uts) restoreUts(s.uts);
  const shmIds: [number, number][] = [];
  if (kinds.includes('ipc') && s.ipc) {
    restoreIpcLimits(s.ipc.vars);
    for (const set of s.ipc.sems) restoreSemSet(set);
    for (const q of s.ipc.msgs) restoreMsgQueue(q);
    for (const g of s.ipc.shms) shmIds.push([g.desc.id, createSegment(shmFromJson(g)).id]);
    restoreIpcNextIds(s.ipc.vars);
  }
  return { shmIds };
}

function main(argv: string[]): void {
  const [mode, pidText, ...rest] = argv;
  const pid = Number(pidText);
  if (!Number.isInteger(pid) || pid <= 0) throw new Error(`bad pid ${pidText}`);
  if (mode === 'cgroup') {
    // The paths are shown relative to the reader's cgroup namespace: this thread's, once it is PID's.
    const fd = openSync(`/proc/${pid}/ns/cgroup`, 'r');
    try {
      sys('setns', [fd, CLONE.NEWCGROUP], `cgroup namespace of pid ${pid}`);
    } finally {
      closeSync(fd);
    }
    process.stdout.write(readFileSync(`/proc/${pid}/cgroup`, 'utf8'));
    return;
  }
  if (mode === 'rmshm') {
    enter(pid, 'ipc');
    for (const id of rest) removeSegment(Number(id));
    return;
  }
  const kinds = (rest[0] ?? '').split(',').filter(Boolean);
  for (const k of kinds) {
    if (k !== 'ipc' && k !== 'uts') throw new Error(`unknown namespace kind ${k}`);
    enter(pid, k);
  }
  if (mode === 'dump') process.stdout.write(JSON.stringify(dump(kinds)));
  else if (mode === 'restore') process.stdout.write(JSON.stringify(restore(kinds, JSON.parse(readFileSync(0, 'utf8')) as NsState)));
  else throw new Error(`unknown mode ${mode}`);
}

try {
  main(process.argv.slice(2));
} catch (e) {
  process.stderr.write(`${(e as Error).message}\n`);
  process.exitCode = 1;
}
