// cryo as a library: `import { check, dump, restore } from 'cryo'`. Each returns its result as
// data (the same object `cryo ... --json` prints) and does not throw for a refusal or a failure.
// Run as root; calls are synchronous (the engine is one thread of ptrace calls).
export { check } from './api/check.js';
export { dump } from './api/dump.js';
export { restore } from './api/restore.js';
export type {
  Verdict, Counts, Timings, LogOptions, CheckOptions, CheckResult, KernelCheckResult, TreeCheckResult, DumpOptions, DumpResult, RestoreOptions, RestoreResult,
} from './api/types.js';
export type { KernelReport, TreeReport, TaskReport, Probe, Note, FdResource, MapResource, NsResource } from './check/report.js';
export type { Blocker } from './util/blocker.js';
export type { Progress, ProgressSink } from './util/progress.js';
export { blockerText } from './util/blocker.js';
