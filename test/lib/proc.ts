// Small /proc readers for the test harness. Everything here tolerates the process vanishing
// between two reads (returns null instead of throwing).

import * as fs from 'node:fs';

export const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

export interface ProcStat {
  pid: number;
  comm: string;
  /** R, S, D, T, t, Z, X, I, ... */
  state: string;
  ppid: number;
  pgrp: number;
  session: number;
  /** wait status of a zombie (field 52 of stat), null if not available */
  exitCode: number | null;
}

/** "killed by SIGSEGV (core dumped)" / "exited with 1" for a wait status. */
export function describeWaitStatus(code: number): string {
  const sig = code & 0x7f;
  if (sig === 0) return `exited with ${(code >> 8) & 0xff}`;
  const names: Record<number, string> = {
    1: 'SIGHUP', 2: 'SIGINT', 3: 'SIGQUIT', 4: 'SIGILL', 5: 'SIGTRAP', 6: 'SIGABRT', 7: 'SIGBUS', 8: 'SIGFPE',
    9: 'SIGKILL', 10: 'SIGUSR1', 11: 'SIGSEGV', 12: 'SIGUSR2', 13: 'SIGPIPE', 14: 'SIGALRM', 15: 'SIGTERM',
    31: 'SIGSYS',
  };
  return `killed by ${names[sig] ?? 'signal ' + sig}${code & 0x80 ? ' (core dumped)' : ''}`;
}

function readText(path: string): string | null {
  try {
    return fs.readFileSync(path, 'utf8');
  } catch {
    return null;
  }
}

export function pidExists(pid: number): boolean {
  return fs.existsSync(`/proc/${pid}`);
}

export function procStat(pid: number): ProcStat | null {
  const s = readText(`/proc/${pid}/stat`);
  if (s === null) return null;
  // comm is in parentheses and may contain spaces and ')' itself: split at the last ')'
  const open = s.indexOf('(');
  const close = s.lastIndexOf(')');
  if (open < 0 || close < 0) return null;
  const rest = s.slice(close + 2).split(' ');
  return {
    pid: Number(s.slice(0, open).trim()),
    comm: s.slice(open + 1, close),
    state: rest[0] ?? '?',
    ppid: Number(rest[1]),
    pgrp: Number(rest[2]),
    session: Number(rest[3]),
    exitCode: rest.length > 49 && rest[0] === 'Z' ? Number(rest[49]) : null,
  };
}

/** argv of a process from /proc/PID/cmdline, or null if gone/unreadable. */
export function readCmdline(pid: number): string[] | null {
  let buf: Buffer;
  try {
    buf = fs.readFileSync(`/proc/${pid}/cmdline`);
  } catch {
    return null;
  }
  const parts = buf.toString('utf8').split('\0');
  if (parts.length && parts[parts.length - 1] === '') parts.pop();
  return parts;
}

export function readCwd(pid: number): string | null {
  try {
    return fs.readlinkSync(`/proc/${pid}/cwd`);
  } catch {
    return null;
  }
}

/** A field of /proc/PID/status ("TracerPid", "State", ...), or null. */
export function statusField(pid: number, field: string): string | null {
  const s = readText(`/proc/${pid}/status`);
  if (s === null) return null;
  for (const line of s.split('\n')) {
    if (line.startsWith(field + ':')) return line.slice(field.length + 1).trim();
  }
  return null;
}

/** The blocking syscall number from /proc/PID/syscall ("running" -> null). */
export function currentSyscall(pid: number): number | null {
  const s = readText(`/proc/${pid}/syscall`);
  if (s === null) return null;
  const first = s.trim().split(' ')[0];
  const n = Number(first);
  return Number.isInteger(n) ? n : null;
}

/** /proc/PID/maps as lines (empty array if the process is gone). */
export function mapsSnapshot(pid: number): string[] {
  const s = readText(`/proc/${pid}/maps`);
  if (s === null) return [];
  return s.split('\n').filter((l) => l.length > 0);
}

/**
 * Normalise a maps line for comparison: collapse padding; the inode of anonymous shared memory
 * ("/dev/zero (deleted)", "/SYSV...") names a shmem object the kernel creates per mapping, so a
 * restored mapping necessarily has a new one: it is blanked. Everything else must be equal.
 */
export function normalizeMapsLine(line: string): string {
  const m = /^(\S+)\s+(\S+)\s+(\S+)\s+(\S+)\s+(\d+)\s*(.*)$/.exec(line);
  if (!m) return line;
  const [, range, perms, off, dev, ino, path] = m;
  const shmem = path === '/dev/zero (deleted)' || path!.startsWith('/SYSV');
  return `${range} ${perms} ${off} ${dev} ${shmem ? '<shmem-inode>' : ino} ${path}`;
}

/** Human-readable differences between two maps snapshots (empty string when equal). */
export function diffMaps(before: string[], after: string[]): string {
  const a = before.map(normalizeMapsLine);
  const b = after.map(normalizeMapsLine);
  const out: string[] = [];
  const n = Math.max(a.length, b.length);
  for (let i = 0; i < n; i++) {
    if (a[i] !== b[i]) out.push(`  line ${i + 1}\n    before: ${a[i] ?? '<none>'}\n    after:  ${b[i] ?? '<none>'}`);
  }
  if (!out.length) return '';
  return (
    `${out.length} line(s) differ:\n${out.slice(0, 20).join('\n')}` +
    `\n--- maps before ---\n${a.join('\n')}\n--- maps after ---\n${b.join('\n')}`
  );
}

/** One-line description of a PID for error messages. */
export function describePid(pid: number): string {
  if (!pidExists(pid)) return `pid ${pid}: no such process`;
  const st = procStat(pid);
  const cmd = readCmdline(pid);
  const tracer = statusField(pid, 'TracerPid');
  const died = st?.exitCode !== null && st?.exitCode !== undefined ? ` (${describeWaitStatus(st.exitCode)})` : '';
  return (
    `pid ${pid}: state ${st?.state ?? '?'}${died} ppid ${st?.ppid ?? '?'} sid ${st?.session ?? '?'} ` +
    `tracer ${tracer ?? '?'} comm ${JSON.stringify(st?.comm ?? '?')} cmdline ${JSON.stringify(cmd)}`
  );
}

/** Poll cond every intervalMs until true or timeout; returns the last value of cond. */
export async function waitFor(cond: () => boolean, timeoutMs: number, intervalMs = 10): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (cond()) return true;
    if (Date.now() >= deadline) return false;
    await sleep(intervalMs);
  }
}

/**
 * Wait until /proc/PID disappears (the process exited AND was reaped). The event loop keeps
 * running meanwhile so that node can reap its own children; orphans are reaped by PID 1, which
 * on this machine takes about a second.
 */
export function waitPidGone(pid: number, timeoutMs = 15000): Promise<boolean> {
  return waitFor(() => !pidExists(pid), timeoutMs, 20);
}

/** PIDs of all processes for which pred(pid) is true. */
export function findProcesses(pred: (pid: number) => boolean): number[] {
  const out: number[] = [];
  for (const name of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    const pid = Number(name);
    try {
      if (pred(pid)) out.push(pid);
    } catch {
      // raced with exit
    }
  }
  return out;
}

/** SIGKILL to each of `pids` (ours, by PID), those already gone skipped. */
export function killPids(pids: number[]): void {
  for (const pid of pids) {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      /* gone */
    }
  }
}

/** `root` and all its descendants, from each thread's /proc children list (the ones gone meanwhile left out). */
export function descendantPids(root: number): number[] {
  const out = [root];
  for (let i = 0; i < out.length; i++) {
    let tids: string[] = [];
    try {
      tids = fs.readdirSync(`/proc/${out[i]}/task`);
    } catch {
      continue;
    }
    for (const tid of tids) {
      try {
        const kids = fs.readFileSync(`/proc/${out[i]}/task/${tid}/children`, 'utf8').trim();
        if (kids) out.push(...kids.split(/\s+/).map(Number));
      } catch {
        /* gone */
      }
    }
  }
  return out;
}
