// check(): the kernel's features, or whether a tree can be checkpointed, as data.
import { checkKernel } from '../check/kernel.js';
import { checkTree } from '../check/tree.js';
import { TimedLog } from './timed-log.js';
import type { CheckOptions, CheckResult, KernelCheckResult, TreeCheckResult } from './types.js';

/** Without a pid: the kernel's features; with one: whether the tree under it can be checkpointed. */
export function check(opts?: CheckOptions & { pid?: undefined }): KernelCheckResult;
export function check(opts: CheckOptions & { pid: number }): TreeCheckResult;
export function check(opts?: CheckOptions): CheckResult;
export function check(opts: CheckOptions = {}): CheckResult {
  const clock = new TimedLog(-1); // no log output: check only reports
  if (opts.pid === undefined) return { command: 'check', target: 'kernel', ...checkKernel(), timings: clock.timings() };
  try {
    const r = checkTree(opts.pid, { extUnixSk: opts.extUnixSk, ghostLimit: opts.ghostLimit, fileLocks: opts.fileLocks, shellJob: opts.shellJob, tcpEstablished: opts.tcpEstablished, tcpClose: opts.tcpClose, skipInFlight: opts.skipInFlight, externalMounts: opts.externalMounts ?? new Map(), externalTtys: opts.externalTtys ?? new Set(), freezeCgroup: opts.freezeCgroup });
    const counts = {
      tasks: r.tasks.length,
      threads: r.tasks.reduce((n, t) => n + t.threads, 0),
      fds: r.tasks.reduce((n, t) => n + t.fds.length, 0),
      maps: r.tasks.reduce((n, t) => n + t.maps.length, 0),
    };
    return { command: 'check', target: 'tree', ...r, counts, timings: clock.timings() };
  } catch (e) {
    return { command: 'check', target: 'tree', pid: opts.pid, verdict: 'failed', error: e instanceof Error ? (process.env.CRYO_DEBUG ? String(e.stack) : e.message) : String(e), blockers: [], timings: clock.timings() };
  }
}
