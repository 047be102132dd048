// The library's options and results (`import { check, dump, restore } from 'cryo'`). Results are
// plain data: `cryo ... --json` prints them as they are, and the RPC to come sends them.
import type { Blocker } from '../util/blocker.js';
import type { CgroupMode } from '../util/option-defaults.js';
import type { CgroupRootSpec } from '../util/cgroup-root.js';
import type { ProgressSink } from '../util/progress.js';
import type { KernelReport, TreeReport } from '../check/report.js';
import type { VerifyMode } from '../restore/verify.js';

/**
 * done: the dump or restore happened. ok: check found nothing against it. refused: cannot be
 * checkpointed (the blockers say why; nothing was touched). failed: it went wrong (a dump leaves
 * the target running untouched, a restore leaves no process behind; `error` says what).
 */
export type Verdict = 'ok' | 'refused' | 'failed' | 'done';

export interface Counts {
  tasks: number;
  threads: number;
  fds: number;
  /** Pages of memory written (dump) or in the images to read back (restore). */
  pages: number;
  bytes: number;
}

export interface Timings {
  /** From the call to its return. */
  totalMs: number;
  /** How long the tasks were frozen (dump only). */
  frozenMs?: number;
  /** Each step the engine ran (`log.step`), summed over its runs, in the order first seen. */
  phases: Record<string, number>;
}

/** Where the log goes: level 0 (errors) .. 4 (everything), to stderr or to a new file. */
export interface LogOptions {
  /** Default 0 for the library (errors only), 2 for the CLI. */
  logLevel?: number;
  logFile?: string;
}

/** What `check` tests besides the kernel. Without `pid`: the kernel's features. */
export interface CheckOptions {
  pid?: number;
  /** As for dump: unix peers outside the tree are not blockers. */
  extUnixSk?: boolean;
  /** As for dump: deleted files up to this many bytes are not blockers (default 1 MiB). */
  ghostLimit?: number;
  /** As for dump: file locks are not blockers. */
  fileLocks?: boolean;
  /** As for dump: a terminal from outside the tree is not a blocker. */
  shellJob?: boolean;
  /** As for dump: TCP connections are not blockers. */
  tcpEstablished?: boolean;
  /** As for dump: TCP connections are not blockers (they would be restored closed). */
  tcpClose?: boolean;
  /** As for dump: a TCP listener's connections not yet accepted are not blockers (they would be dropped). */
  skipInFlight?: boolean;
  /** As for dump: mounts from the host named by mount point (--external mnt[MOUNTPOINT]:KEY). */
  externalMounts?: Map<string, string>;
  /** As for dump: terminals from outside (--external tty[RDEV:DEV], normalised keys). */
  externalTtys?: Set<string>;
  /** As for dump: judge the cgroup --freeze-cgroup would freeze ('' for the root's own). */
  freezeCgroup?: string;
}

export type KernelCheckResult = { command: 'check'; target: 'kernel'; timings: Timings } & KernelReport;

/** A tree that was looked at (ok or refused), or could not be (failed: no such PID, ...). */
export type TreeCheckResult =
  | ({ command: 'check'; target: 'tree'; counts: Omit<Counts, 'pages' | 'bytes'> & { maps: number }; timings: Timings } & TreeReport)
  | { command: 'check'; target: 'tree'; pid: number; verdict: 'failed'; error: string; blockers: Blocker[]; timings: Timings };

export type CheckResult = KernelCheckResult | TreeCheckResult;

export interface DumpOptions extends LogOptions {
  pid: number;
  /** Created if missing; must be empty. */
  dir: string;
  /** Keep the tree running after the checkpoint (proving it was left unchanged). */
  leaveRunning?: boolean;
  /** With leaveRunning: frozen until the memory is on disk, no copy-on-write snapshot (--frozen-copy). */
  frozenCopy?: boolean;
  extUnixSk?: boolean;
  ghostLimit?: number;
  fileLocks?: boolean;
  /** The tree's terminal from outside (the caller's) is reattached on restore (`restore --shell-job`). */
  shellJob?: boolean;
  /** Checksum the page images in the manifest too. */
  verifyPages?: boolean;
  /** Checkpoint TCP connections (TCP repair; CRIU's --tcp-established) instead of refusing them. */
  tcpEstablished?: boolean;
  /**
   * Save TCP connections to be restored closed (CRIU's --tcp-close; over tcpEstablished): no
   * repair mode, no network lock; the restore gives the program a socket shut down both ways.
   */
  tcpClose?: boolean;
  /**
   * Drop a TCP listener's connections not yet accepted (CRIU's --skip-in-flight) instead of
   * refusing the listener: it comes back with an empty accept queue; their clients are reset.
   */
  skipInFlight?: boolean;
  /** How their packets are held off while frozen: nftables (default), iptables or skip. */
  networkLock?: 'nftables' | 'iptables' | 'skip';
  /** A container's mounts from the host: mount point -> key (--external mnt[MOUNTPOINT]:KEY). */
  externalMounts?: Map<string, string>;
  /**
   * Terminals from outside the tree that the caller hands back at restore (--external
   * tty[RDEV:DEV]; keys as util/ext-tty.ts writes them): restore's inherit gives one for each.
   */
  externalTtys?: Set<string>;
  /**
   * Freeze the tree through its v2 cgroup while it is seized (CRIU's --freeze-cgroup): this
   * cgroup directory, or '' for the root's own cgroup. It must hold the tree and nothing else.
   */
  freezeCgroup?: string;
  /** Save the tree's cgroups with their settings (CRIU's --manage-cgroups; 'ignore': only which cgroup each task is in). */
  manageCgroups?: CgroupMode;
  /** Called as memory is written and tasks are done. */
  onProgress?: ProgressSink;
  /**
   * Catch SIGINT, SIGTERM and SIGHUP while the dump runs: the tree is put back and the result is
   * 'failed' with the signal (the CLI does; a library caller may own its signals).
   */
  interruptible?: boolean;
}

export interface DumpResult {
  command: 'dump';
  verdict: 'done' | 'refused' | 'failed';
  pid: number;
  dir: string;
  blockers: Blocker[];
  /** Present when done. */
  counts?: Counts;
  timings: Timings;
  error?: string;
  /** The signal number that interrupted the dump (the tree was put back and left running). */
  signal?: number;
}

export interface RestoreOptions extends LogOptions {
  dir: string;
  /** Return once the tree runs (default); false: wait for the root to exit. */
  detach?: boolean;
  pidfile?: string;
  /** Our fds standing in for files of the image, by key (`pipe:[INO]`), as --inherit-fd. */
  inherit?: Map<string, number>;
  shellJob?: boolean;
  trustImage?: boolean;
  /** Compare the restored tasks with the images before they run (default 'on'). */
  verify?: VerifyMode;
  /** With verify 'warn', called with each difference (they are also in the result). */
  onDifference?: (line: string) => void;
  onProgress?: ProgressSink;
  /** What of the image's cpuinfo.img this CPU must have (--cpu-cap: fpu, ins, cpu, all, none; default fpu,ins). */
  cpuCap?: string;
  /** The images hold TCP connections: restore them (CRIU's --tcp-established; refused without). */
  tcpEstablished?: boolean;
  /**
   * The images' TCP connections come back closed (CRIU's --tcp-close): needed for images dumped
   * with it; over tcpEstablished for images dumped in repair mode.
   */
  tcpClose?: boolean;
  /** How their packets are held off until the tree runs, when the dump's lock is gone (default nftables). */
  networkLock?: 'nftables' | 'iptables' | 'skip';
  /** The images' cgroup settings: into the cgroups the restore makes (soft, default), into all (full), or no cgroup touched (ignore). */
  manageCgroups?: CgroupMode;
  /** --cgroup-root: the root task's cgroup becomes PATH (in one hierarchy, or every one without a controller), the cgroups below it moved along. */
  cgroupRoot?: CgroupRootSpec[];
  /** External resources, CRIU's --external syntax: veth[INSIDE]:OUTSIDE (the host end's name), mnt[KEY]:PATH (a host path bound where the dump saved a mount of key KEY). */
  external?: string[];
  /** Where a container's root directory is now (--root; default: where it was at dump time). */
  root?: string;
  /** Host paths of a container's external mounts by key (--ext-mount-map KEY:PATH). */
  extMounts?: Map<string, string>;
}

export interface RestoreResult {
  command: 'restore';
  verdict: 'done' | 'refused' | 'failed';
  dir: string;
  /** The restored root's PID (when done). */
  pid?: number;
  blockers: Blocker[];
  counts?: Counts;
  timings: Timings;
  /** With verify 'warn': what differed. */
  differences: string[];
  /** Without detach: the restored root's exit status. */
  exitCode?: number;
  error?: string;
}
