// Reading a live (or ptrace-stopped) process's observable state from /proc into a Snapshot:
// per thread its signal mask, pending signals, credentials, name and scheduling; per process its
// dispositions, session, limits, personality, fs context, mappings (with VmFlags) and fds. Only
// reads: the process is not stopped or touched (sockets are looked at through a dup from pidfd).
import { readFileSync, readlinkSync, readdirSync } from 'node:fs';
import { affinityText, cpuList, ioprioOf } from '../task/placement.js';
import { ksmMergeAny } from '../mm/modes.js';
import { SPECULATION_STATUS } from '../task/speculation.js';
import { schedPolicyOf } from '../task/attributes.js';
import { observedMceKill } from '../task/mce-kill.js';
import { parseStat, parseStatus, parseLimits, parseMaps, parseSmapsVmFlags, statusHex } from '../../proc/index.js';
import { dumperLevels } from '../ns/pid.js';
import { signalSet, limitKey, limitValue, mappingKey, permsOf, threadPrefix, stripDeleted } from './names.js';
import { readFds } from './read-fds.js';
import type { Snapshot } from './snapshot.js';

const read = (path: string): string => readFileSync(path, 'utf8');

export interface ObserveOptions {
  /** Also getsockopt every socket (through pidfd_getfd). */
  sockets: boolean;
  /**
   * Also what no image records (cgroup, POSIX timers, run state): for comparing a process with
   * itself; a restore's check leaves them out (two reads fewer per process).
   */
  unrecorded?: boolean;
}

/** Everything observable about process `pid`. Throws if it went away meanwhile. */
export function observeProcess(pid: number, opts: ObserveOptions): Snapshot {
  const s: Snapshot = new Map();
  const tids = readdirSync(`/proc/${pid}/task`).map(Number).sort((a, b) => a - b);
  s.set('threads', { set: tids.map(String) });
  for (const tid of tids) observeThread(s, pid, tid);

  const status = parseStatus(read(`/proc/${pid}/status`));
  const stat = parseStat(read(`/proc/${pid}/stat`));
  s.set('SigIgn', signalSet(statusHex(status, 'SigIgn')));
  s.set('SigCgt', signalSet(statusHex(status, 'SigCgt')));
  s.set('ShdPnd', signalSet(statusHex(status, 'ShdPnd')));
  s.set('Seccomp', status.get('Seccomp') ?? '');
  s.set('NoNewPrivs', status.get('NoNewPrivs') ?? '');
  s.set('umask', status.get('Umask') ?? '');
  s.set('pgid', String(stat.pgid));
  s.set('sid', String(stat.sid));
  // Its PIDs in the PID namespaces below cryo's (a container's task): '' in cryo's own.
  s.set('NSpid', (status.get('NSpid') ?? '').split(/\s+/).slice(dumperLevels()).join(' '));
  s.set('personality', read(`/proc/${pid}/personality`).trim());
  s.set('oom_score_adj', read(`/proc/${pid}/oom_score_adj`).trim());
  const ksm = ksmMergeAny(pid);
  if (ksm !== null) s.set('ksm_merge_any', ksm ? 'yes' : 'no');
  s.set('cwd', stripDeleted(readlinkSync(`/proc/${pid}/cwd`)));
  s.set('root', stripDeleted(readlinkSync(`/proc/${pid}/root`)));
  if (opts.unrecorded) {
    s.set('state', stat.state === 'T' ? 'stopped' : stat.state === 'Z' ? 'zombie' : 'running');
    s.set('cgroup', read(`/proc/${pid}/cgroup`).trim().split('\n').join(' ; '));
    s.set('timers', read(`/proc/${pid}/timers`).trim().split('\n').join(' ; '));
  }
  parseLimits(read(`/proc/${pid}/limits`)).forEach((l, res) => s.set(limitKey(res), limitValue(l.cur, l.max)));
  observeMappings(s, pid);
  readFds(s, pid, opts.sockets);
  return s;
}

function observeThread(s: Snapshot, pid: number, tid: number): void {
  const p = threadPrefix(pid, tid);
  const dir = `/proc/${pid}/task/${tid}`;
  const status = parseStatus(read(`${dir}/status`));
  const stat = parseStat(read(`${dir}/stat`));
  s.set(`${p}SigBlk`, signalSet(statusHex(status, 'SigBlk')));
  s.set(`${p}SigPnd`, signalSet(statusHex(status, 'SigPnd')));
  // Not status's Name: (escaped, and trimmed by the parser).
  s.set(`${p}comm`, read(`${dir}/comm`).replace(/\n$/, ''));
  s.set(`${p}Uid`, (status.get('Uid') ?? '').split(/\s+/).join(' '));
  s.set(`${p}Gid`, (status.get('Gid') ?? '').split(/\s+/).join(' '));
  s.set(`${p}Groups`, { set: (status.get('Groups') ?? '').split(/\s+/).filter(Boolean) });
  for (const cap of ['CapInh', 'CapPrm', 'CapEff', 'CapBnd', 'CapAmb']) s.set(`${p}${cap}`, status.get(cap) ?? '');
  s.set(`${p}nice`, String(stat.nice));
  s.set(`${p}policy`, String(schedPolicyOf(tid, stat.policy)));
  s.set(`${p}mce`, observedMceKill(stat.flags));
  s.set(`${p}rt_priority`, String(stat.rtPriority));
  s.set(`${p}timerslack`, read(`/proc/${tid}/timerslack_ns`).trim());
  s.set(`${p}affinity`, affinityText(cpuList(status.get('Cpus_allowed_list') ?? '')));
  s.set(`${p}ioprio`, String(ioprioOf(tid)));
  for (const line of SPECULATION_STATUS) if (status.has(line)) s.set(`${p}${line}`, status.get(line)!);
}

/** Each VMA: its range (in 'mappings'), perms, file and offset, and VmFlags. */
function observeMappings(s: Snapshot, pid: number): void {
  const maps = parseMaps(read(`/proc/${pid}/maps`));
  const vmFlags = parseSmapsVmFlags(read(`/proc/${pid}/smaps`));
  const ranges: string[] = [];
  for (const m of maps) {
    const key = mappingKey(m.start, m.end);
    ranges.push(key.slice('mapping '.length));
    s.set(key, permsOf(m.read, m.write, m.exec, m.shared));
    if (isFileMapping(m.path, m.inode)) s.set(`${key} file`, `${m.path} @${m.offset.toString(16)}`);
    s.set(`${key} VmFlags`, { set: [...(vmFlags.get(m.start) ?? [])].sort() });
  }
  s.set('mappings', { set: ranges });
}

/**
 * A mapping of a file by path. Not: the kernel's ([vdso] ...), anonymous shared memory
 * (/dev/zero), SysV segments and memfds (names the kernel makes up, "(deleted)" included).
 */
export function isFileMapping(path: string, inode: number): boolean {
  return inode !== 0 && path.startsWith('/') && !path.startsWith('/SYSV') && !path.startsWith('/dev/zero') && !path.startsWith('/memfd:');
}

/** The process and its descendants (from /proc/PID/task/TID/children), parents first. */
export function treePids(root: number): number[] {
  const out = [root];
  for (let i = 0; i < out.length; i++) {
    let tids: string[] = [];
    try {
      tids = readdirSync(`/proc/${out[i]}/task`);
    } catch {
      continue;
    }
    for (const tid of tids) {
      try {
        const kids = read(`/proc/${out[i]}/task/${tid}/children`).trim();
        if (kids) out.push(...kids.split(/\s+/).map(Number));
      } catch {
        /* gone */
      }
    }
  }
  return out;
}
