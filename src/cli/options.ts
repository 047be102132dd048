// Parsing of the command line's values, and the exit codes scripts can rely on.
import { InvalidArgumentError, Option, type Command } from 'commander';
import { fstatSync } from 'node:fs';
import { CGROUP_MODES } from '../util/option-defaults.js';
import { parseExtTty } from '../util/ext-tty.js';
import { parseCgroupRoot, type CgroupRootSpec } from '../util/cgroup-root.js';

/** Exit codes: documented in --help and the README. A dump interrupted by a signal exits 128+signal. */
export const EXIT = {
  /** Done (check: nothing against it). */
  done: 0,
  /** Failed: a dump leaves the target running untouched, a restore leaves no process behind. */
  failed: 1,
  /** Bad usage: unknown command or option, bad or missing value. */
  usage: 2,
  /** Refused: the tree cannot be checkpointed (the blockers are named), or the kernel lacks a feature. */
  refused: 3,
} as const;

export const EXIT_CODES_HELP = `
Exit codes:
  0    done (check: can be checkpointed; restore without -d: the restored process's own status)
  1    failed (a dump leaves the process running untouched; a restore leaves no process behind)
  2    bad usage (unknown option, bad or missing value)
  3    refused: cannot be checkpointed, every blocker named (check, dump), or the kernel lacks
       a feature cryo needs (check)
  128+N  a dump interrupted by signal N (SIGINT, SIGTERM, SIGHUP): the process was put back`;

/** Bad usage found after commander's own parsing (a missing -t, ...): exit 2. */
export class UsageError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'UsageError';
  }
}

/** A PID as -t takes it: a positive decimal integer; anything else is named as it was given. */
export function parsePid(text: string): number {
  const t = text.trim();
  const n = Number(t);
  if (!/^\d+$/.test(t) || !Number.isSafeInteger(n) || n < 1) throw new InvalidArgumentError(`not a PID: '${text}' (a process ID is a positive number, e.g. -t 1234)`);
  return n;
}

/** A size with an optional K/M/G suffix (powers of 1024), as --ghost-limit takes it. */
export function parseSize(text: string): number {
  const m = /^(\d+)([KMG]?)B?$/i.exec(text.trim());
  if (!m) throw new InvalidArgumentError(`not a size: ${text} (examples: 1048576, 512K, 4M)`);
  return Number(m[1]) * 1024 ** ' KMG'.indexOf((m[2] || ' ').toUpperCase());
}

/** -v LEVEL, -vLEVEL (CRIU's -v4), bare -v (3) or -vv.. (one more per v): 0..4, anything else refused. */
export function parseVerbosity(text: string): number {
  const t = text.trim();
  const level = /^v*$/.test(t) ? 3 + t.length : /^\d$/.test(t) ? Number(t) : NaN;
  if (!(level >= 0 && level <= 4)) throw new InvalidArgumentError(`'${text}' is not a level: 0 (errors only) .. 4 (everything), e.g. -v4`);
  return level;
}

/** One --inherit-fd fd[N]:KEY, added to the map of the ones before: N must be open in cryo. */
/** Repeatable --external RESOURCE (CRIU's syntax, e.g. veth[eth0]:host0), in order. */
export function collectExternal(spec: string, list: string[]): string[] {
  if (!/^[a-z]+\[[^\]]+\](:.*)?$/.test(spec)) throw new InvalidArgumentError(`not KIND[KEY]:VALUE: ${spec} (example: veth[eth0]:host0)`);
  return [...list, spec];
}

export function collectInherit(spec: string, map: Map<string, number>): Map<string, number> {
  const m = /^fd\[(\d+)\]:(.+)$/.exec(spec);
  if (!m) throw new InvalidArgumentError(`not fd[N]:KEY: ${spec} (examples: fd[3]:pipe:[12345], fd[3]:tty[8800:19])`);
  const fd = Number(m[1]);
  try {
    fstatSync(fd);
  } catch {
    throw new InvalidArgumentError(`fd ${fd} is not open in cryo (give it with a redirection such as 3>&1 or 3<pipe)`);
  }
  let key = m[2]!;
  try {
    key = parseExtTty(key) ?? key; // tty[RDEV:DEV] as the images name it
  } catch (e) {
    throw new InvalidArgumentError((e as Error).message);
  }
  map.set(key, fd);
  return map;
}

/** What dump and check take with --external (CRIU's syntax): mounts from the host, terminals from outside. */
export interface DumpExternals {
  /** mnt[MOUNTPOINT]:KEY, as MOUNTPOINT -> KEY */
  mounts: Map<string, string>;
  /** tty[RDEV:DEV], normalised (util/ext-tty.ts) */
  ttys: Set<string>;
}

export function noDumpExternals(): DumpExternals {
  return { mounts: new Map(), ttys: new Set() };
}

/** One dump --external mnt[MOUNTPOINT]:KEY or tty[RDEV:DEV], added to those before. */
export function collectDumpExternal(spec: string, acc: DumpExternals): DumpExternals {
  let tty: string | null;
  try {
    tty = parseExtTty(spec);
  } catch (e) {
    throw new InvalidArgumentError((e as Error).message);
  }
  if (tty) {
    acc.ttys.add(tty);
    return acc;
  }
  const m = /^mnt\[([^\]]+)\]:(.+)$/.exec(spec);
  if (!m) throw new InvalidArgumentError(`not mnt[MOUNTPOINT]:KEY or tty[RDEV:DEV]: ${spec} (examples: mnt[/data]:data, tty[8800:19])`);
  acc.mounts.set(m[1]!, m[2]!);
  return acc;
}

/** One --ext-mount-map A:B (CRIU's older spelling: MOUNTPOINT:KEY at dump, KEY:PATH at restore). */
export function collectExtMountMap(spec: string, map: Map<string, string>): Map<string, string> {
  const m = /^([^:]+):(.+)$/.exec(spec);
  if (!m) throw new InvalidArgumentError(`not A:B: ${spec} (example: /data:data at dump, data:/srv/data at restore)`);
  map.set(m[1]!, m[2]!);
  return map;
}

/** One --cgroup-root [CONTROLLER:]/PATH, after the ones before. */
export function collectCgroupRoot(spec: string, list: CgroupRootSpec[]): CgroupRootSpec[] {
  const r = parseCgroupRoot(spec);
  if (!r) throw new InvalidArgumentError(`not [CONTROLLER:]/PATH: ${spec} (examples: /restored/ct1, memory:/ct1)`);
  return [...list, r];
}

export function verbosityOption(help = "log level 0 (errors) .. 4 (everything, each step with its duration); -v4 is CRIU's spelling, -v alone is 3"): Option {
  return new Option('-v, --verbosity [level]', help).preset('3').argParser(parseVerbosity).default(2);
}

/** --network-lock (CRIU's): how packets of dumped TCP connections are held off. */
export function networkLockOption(): Option {
  return new Option('--network-lock <method>', 'with --tcp-established: lock the connections with nftables (a table of cryo\'s own), iptables (a chain), or skip (the network is isolated already)')
    .choices(['nftables', 'iptables', 'skip'])
    .default('nftables');
}

export function addLogOptions(c: Command): Command {
  return c
    .addOption(verbosityOption())
    .option('-o, --log-file <file>', 'write the log to FILE (at the chosen level) instead of stderr');
}

export function addJsonOption(c: Command): Command {
  return c.option('--json', 'print the result as one JSON object on stdout (verdict, blockers, counts, timings) and nothing else there; no progress line');
}

export const FREEZE_CGROUP_HELP =
  "freeze the tree through its cgroup v2 (cgroup.freeze) while it is seized: race-free for a tree that forks all the time. " +
  "DIR: the cgroup's directory (default: the root's own cgroup); it must hold the tree and nothing else, and is thawed on every exit path";

/** --freeze-cgroup [dir]: absent, given alone (the root's own cgroup: ''), or a directory. */
export function freezeCgroupArg(v: unknown): string | undefined {
  if (v === undefined || v === false) return undefined;
  return v === true ? '' : String(v);
}

/** --manage-cgroups [mode] (CRIU's modes; alone: soft). */
export function manageCgroupsOption(help: string): Option {
  return new Option('--manage-cgroups [mode]', help).choices(CGROUP_MODES).preset('soft');
}
