// Before anything is touched: which tasks make up the tree, and whether cryo can checkpoint
// every one of them. Every blocker is named, with the PID and the object.
import { readFileSync, readdirSync, existsSync } from 'node:fs';
import { parseStat, parseStatus, parseMaps, statusNumber } from '../proc/index.js';
import { memoryBlockers } from '../resources/mm/dump.js';
import { fdBlockers } from '../resources/files/reg.js';
import { UserError } from '../util/errors.js';

export interface TaskPlan {
  pid: number;
  threads: number[];
}

export function threadsOf(pid: number): number[] {
  return readdirSync(`/proc/${pid}/task`).map(Number).sort((a, b) => a - b);
}

export function childrenOf(pid: number): number[] {
  const out: number[] = [];
  for (const tid of threadsOf(pid)) {
    const text = readFileSync(`/proc/${pid}/task/${tid}/children`, 'utf8').trim();
    if (text) out.push(...text.split(/\s+/).map(Number));
  }
  return out;
}

/** Lists the tasks to dump and every reason they cannot be; does not stop or change anything. */
export function collectTree(pid: number, frozenByUs = false): { tasks: TaskPlan[]; blockers: string[] } {
  if (!Number.isInteger(pid) || pid <= 0) throw new UserError(`invalid PID ${pid}`);
  if (!existsSync(`/proc/${pid}`)) throw new UserError(`no process with PID ${pid}`);
  if (pid === process.pid) throw new UserError(`PID ${pid} is cryo itself`);
  const blockers: string[] = [];
  const threads = threadsOf(pid);
  const stat = parseStat(readFileSync(`/proc/${pid}/stat`, 'utf8'));
  const status = parseStatus(readFileSync(`/proc/${pid}/status`, 'utf8'));
  if (stat.state === 'Z') throw new UserError(`pid ${pid} is a zombie — nothing to checkpoint`);
  const kids = childrenOf(pid);
  if (kids.length) blockers.push(`pid ${pid}: has child processes (${kids.join(', ')}) — process trees are not supported yet`);
  if (statusNumber(status, 'Seccomp') !== 0) blockers.push(`pid ${pid}: seccomp filter — not supported yet`);
  if (!frozenByUs && (stat.state === 'T' || stat.state === 't')) blockers.push(`pid ${pid}: stopped or traced (state ${stat.state}) — not supported yet`);
  const tracer = statusNumber(status, 'TracerPid');
  if (tracer !== 0 && !(frozenByUs && tracer === process.pid)) blockers.push(`pid ${pid}: already traced by pid ${tracer}`);
  blockers.push(...memoryBlockers(pid, parseMaps(readFileSync(`/proc/${pid}/maps`, 'utf8'))));
  blockers.push(...fdBlockers(pid));
  return { tasks: [{ pid, threads }], blockers };
}
