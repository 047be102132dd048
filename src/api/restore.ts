// restore(): bring a tree back from a directory; the result says what happened, it does not throw.
import { resolve } from 'node:path';
import { restore as restoreTree, type RestoreOptions as EngineRestoreOptions } from '../restore/index.js';
import type { ProgressSink } from '../util/progress.js';
import { traceeStopCount, traceeStopSites } from '../ptrace/index.js';
import { TimedLog } from './timed-log.js';
import { countsAfter, countsText } from './counts.js';
import { outcomeOf } from './outcome.js';
import type { RestoreOptions, RestoreResult } from './types.js';

export function restore(opts: RestoreOptions): RestoreResult {
  const dir = resolve(opts.dir);
  let log: TimedLog;
  try {
    log = new TimedLog(opts.logLevel ?? 0, opts.logFile);
  } catch (e) {
    const { signal: _unused, ...o } = outcomeOf(e);
    return { command: 'restore', dir, ...o, timings: { totalMs: 0, phases: {} }, differences: [] }; // the log file could not be made
  }
  const differences: string[] = [];
  const onDifference = (line: string) => {
    differences.push(line);
    opts.onDifference?.(line);
  };
  const engine: EngineRestoreOptions & { onProgress?: ProgressSink } = {
    dir, detach: opts.detach ?? true, pidfile: opts.pidfile, inherit: opts.inherit, trustImage: !!opts.trustImage,
    shellJob: !!opts.shellJob, log, verify: opts.verify, onDifference, onProgress: opts.onProgress, cpuCap: opts.cpuCap,
    tcpEstablished: !!opts.tcpEstablished, tcpClose: !!opts.tcpClose, networkLock: opts.networkLock ?? 'nftables', external: opts.external ?? [], extMounts: opts.extMounts ?? new Map(), manageCgroups: opts.manageCgroups, cgroupRoot: opts.cgroupRoot ?? [],
    ...(opts.root ? { root: resolve(opts.root) } : {}),
  };
  try {
    log.info(`restore from ${dir}${engine.detach ? '' : ', waiting for the restored tree to exit'}`);
    const stops0 = traceeStopCount();
    const r = restoreTree(engine);
    // After: the restore's own checks of the directory (owner, mode, access) come first.
    const counts = countsAfter(log, dir);
    const timings = log.timings();
    log.info(`restore done: pid ${r.pid}, ${countsText(counts)} in ${timings.totalMs} ms, ${traceeStopCount() - stops0} ptrace stops`);
    for (const [site, n] of traceeStopSites()) log.info(`ptrace stops: ${n} at ${site}`); // CRYO_STOP_SITES=1
    const res: RestoreResult = { command: 'restore', verdict: 'done', dir, pid: r.pid, blockers: [], counts, timings, differences };
    if (r.exitCode !== undefined) res.exitCode = r.exitCode;
    return res;
  } catch (e) {
    const { signal: _unused, ...o } = outcomeOf(e);
    if (log.toFile) log.error(o.error); // on stderr the CLI says it, once
    return { command: 'restore', dir, ...o, timings: log.timings(), differences };
  } finally {
    log.close();
  }
}
