// dump(): checkpoint a tree into a directory; the result says what happened, it does not throw.
import { resolve } from 'node:path';
import { dump as dumpTree, type DumpOptions as EngineDumpOptions } from '../dump/index.js';
import { armInterrupts, SIG } from '../sys/index.js';
import { traceeStopCount, traceeStopSites } from '../ptrace/index.js';
import type { ProgressSink } from '../util/progress.js';
import { TimedLog } from './timed-log.js';
import { countsAfter, countsText } from './counts.js';
import { outcomeOf } from './outcome.js';
import type { DumpOptions, DumpResult } from './types.js';

export function dump(opts: DumpOptions): DumpResult {
  const dir = resolve(opts.dir);
  let log: TimedLog;
  try {
    log = new TimedLog(opts.logLevel ?? 0, opts.logFile);
  } catch (e) {
    return { command: 'dump', pid: opts.pid, dir, ...outcomeOf(e), timings: { totalMs: 0, phases: {} } }; // the log file could not be made
  }
  // onProgress: passed on for the engine to report to (its option types take it as it does).
  const engine: EngineDumpOptions & { onProgress?: ProgressSink } = {
    pid: opts.pid, dir, leaveRunning: !!opts.leaveRunning, frozenCopy: !!opts.frozenCopy, extUnixSk: !!opts.extUnixSk,
    ghostLimit: opts.ghostLimit, fileLocks: !!opts.fileLocks, shellJob: !!opts.shellJob, verifyPages: !!opts.verifyPages, log, onProgress: opts.onProgress,
    tcpEstablished: !!opts.tcpEstablished, tcpClose: !!opts.tcpClose, skipInFlight: !!opts.skipInFlight, networkLock: opts.networkLock ?? 'nftables', externalMounts: opts.externalMounts ?? new Map(), externalTtys: opts.externalTtys ?? new Set(), freezeCgroup: opts.freezeCgroup, manageCgroups: opts.manageCgroups,
  };
  // The dump runs synchronously: these signals only set a flag it polls, and it rolls back.
  const interrupts = opts.interruptible ? armInterrupts([SIG.INT, SIG.TERM, SIG.HUP]) : null;
  try {
    log.info(`dump of pid ${opts.pid} into ${dir}${opts.leaveRunning ? ', leaving it running' : ''}`);
    const stops0 = traceeStopCount();
    const r = dumpTree(engine);
    interrupts?.disarm();
    log.info(`frozen for ${r.frozenMs.toFixed(1)} ms`);
    const counts = countsAfter(log, dir, r.pagesWritten);
    const timings = log.timings({ frozenMs: r.frozenMs });
    log.info(`dump done: ${countsText(counts)} in ${timings.totalMs} ms, ${traceeStopCount() - stops0} ptrace stops`);
    for (const [site, n] of traceeStopSites()) log.info(`ptrace stops: ${n} at ${site}`); // CRYO_STOP_SITES=1
    return { command: 'dump', verdict: 'done', pid: opts.pid, dir, blockers: [], counts, timings };
  } catch (e) {
    interrupts?.disarm();
    const o = outcomeOf(e);
    if (log.toFile) log.error(o.error); // on stderr the CLI says it, once
    return { command: 'dump', pid: opts.pid, dir, ...o, timings: log.timings() };
  } finally {
    log.close();
  }
}
