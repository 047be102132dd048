// The brute-force breakage generator's driver: one seed of test/targets/fuzzstate through
// baseline, `dump --leave-running` + self-check, dump + restore + self-check, classified.
//
// The target builds a random combination of state from its catalogue (test/targets/fuzzstate/)
// and checks it itself; this side only runs cryo and reads what the target reports. Items
// listed as broken or refused in test/fuzz-known.json are left out of the generator unless `all`
// (or `only`) is set; a refusal (`cryo: cannot checkpoint: ...`) is acceptable only when every blocker it names
// matches a known-refused pattern of an item the seed built.

import * as fs from 'node:fs';
import * as path from 'node:path';
import { REPO_ROOT, buildTarget } from './build.js';
import { critDecodeAll, cryoReport, dump, restore } from './cryo.js';
import { waitPidGone } from './proc.js';
import { runningProblem, startTarget, waitForLine, type Target } from './target.js';
import { cleanupTrees, descendants } from './tree.js';

export interface FuzzConfig {
  /** build every catalogue item, the known-broken ones too */
  all?: boolean;
  /** build only these items */
  only?: string[];
  /** instances per seed, "MIN-MAX" */
  k?: string;
  /** decode every image with crit after the dump */
  crit?: boolean;
  /** skip the run without cryo (which tells a generator bug from an engine bug) */
  noBaseline?: boolean;
}

export interface Known {
  /** item -> why it is left out of the generator (an engine bug being fixed) */
  broken: Record<string, string>;
  /** refusals accepted for an item: the blocker text contains `pattern` */
  refused: { item: string; pattern: string }[];
}

export const KNOWN_FILE = path.join(REPO_ROOT, 'test', 'fuzz-known.json');

export function loadKnown(): Known {
  const k = JSON.parse(fs.readFileSync(KNOWN_FILE, 'utf8')) as Partial<Known>;
  return { broken: k.broken ?? {}, refused: k.refused ?? [] };
}

/** Items that check and dump refuse by design (known patterns), each once. */
export function refusedItems(known: Known): string[] {
  return [...new Set(known.refused.map((k) => k.item))];
}

export type Outcome = 'pass' | 'refused' | 'fail' | 'generator-bug';

export interface SeedResult {
  seed: number;
  outcome: Outcome;
  /** where it went wrong: baseline, dump-leave-running, check-after-leave-running, dump, crit, restore, check-after-restore */
  phase: string;
  /** `NAME#I(params)` lines of what the target built */
  built: string[];
  /** catalogue items named by the failure's detail lines ('fuzz' = process-wide checks) */
  blamed: string[];
  /** the target's detail lines, or cryo's error */
  details: string[];
  repro: string;
}

/** The target's argv for a seed under a config. */
export function targetArgs(seed: number, cfg: FuzzConfig, known: Known): string[] {
  const args = [buildTarget('fuzzstate'), String(seed)];
  // A refused item would make every seed that builds it a refusal, which tests nothing else of
  // the seed: such items run alone instead (fuzz.test.ts), where the refusal itself is asserted.
  const left = [...Object.keys(known.broken), ...refusedItems(known)];
  if (cfg.only?.length) args.push('-o', cfg.only.join(','));
  else if (!cfg.all && left.length) args.push('-x', left.join(','));
  if (cfg.k) args.push('-k', cfg.k);
  return args;
}

export function reproLine(seed: number, cfg: FuzzConfig): string {
  let s = `repro: npm run fuzz -- --seed ${seed}`;
  if (cfg.all) s += ' --all';
  if (cfg.only?.length) s += ` --only ${cfg.only.join(',')}`;
  if (cfg.k) s += ` --k ${cfg.k}`;
  if (cfg.crit) s += ' --crit';
  return s;
}

/** The catalogue item a `built:` entry or a detail line (`NAME#I: ...`) is about. */
const itemOf = (line: string) => /^([a-z0-9-]+)/.exec(line)?.[1] ?? 'fuzz';

/** The detail lines of a log section, without their prefix. */
function detailsOf(section: string): string[] {
  return section
    .split('\n')
    .filter((l) => l.startsWith('detail: ') || l.startsWith('SETUP-ERROR'))
    .map((l) => l.replace(/^detail: /, ''));
}

function builtOf(log: string): string[] {
  return log
    .split('\n')
    .filter((l) => l.startsWith('built: '))
    .map((l) => l.slice('built: '.length));
}

/** Blockers of a refused dump, or null when the dump failed otherwise. */
export function refusal(stderr: string): string[] | null {
  const i = stderr.indexOf('cannot checkpoint:');
  if (i < 0) return null;
  return stderr
    .slice(i + 'cannot checkpoint:'.length)
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l && !/^\d+ blockers:$/.test(l));
}

/** CRYO_FUZZ_TRACE=1: how long each step of a seed took, on stderr (the machine is shared). */
function laps(seed: number): (step: string) => void {
  const t0 = Date.now();
  return (step) => {
    if (process.env.CRYO_FUZZ_TRACE) process.stderr.write(`fuzz seed ${seed}: ${step} at ${Date.now() - t0} ms\n`);
  };
}

class SeedFailure extends Error {
  constructor(
    readonly phase: string,
    readonly details: string[],
    readonly outcome: Outcome = 'fail',
  ) {
    super(phase);
  }
}

async function started(args: string[], seed: number): Promise<Target> {
  const t = await startTarget(args, { name: `fuzz-${seed}` });
  const line = await waitForLine(t, ['READY', 'FAIL'], 60_000);
  descendants(t.pid);
  if (!line.startsWith('READY')) throw new SeedFailure('build', detailsOf(t.log()).concat(line), 'generator-bug');
  return t;
}

/** Create `check` and wait for CHECKED; returns the detail lines it printed (none when ok). */
async function selfCheck(t: Target, phase: string): Promise<void> {
  const before = t.log().length;
  fs.writeFileSync(path.join(t.dir, 'check'), '');
  const line = await waitForLine(t, 'CHECKED', 60_000);
  if (line !== 'CHECKED ok') throw new SeedFailure(phase, detailsOf(t.log().slice(before)));
}

async function goAndPass(t: Target, phase: string): Promise<void> {
  const mark = t.log().indexOf('CHECKED');
  fs.writeFileSync(path.join(t.dir, 'go'), '');
  const line = await waitForLine(t, ['PASS', 'FAIL'], 60_000);
  if (!line.startsWith('PASS')) throw new SeedFailure(phase, detailsOf(t.log().slice(mark)).concat(line));
}

/** The run without cryo: build, check, go. A failure here is the generator's own bug. */
async function baseline(args: string[], seed: number): Promise<void> {
  const t = await started(args, seed);
  try {
    await selfCheck(t, 'baseline');
    await goAndPass(t, 'baseline');
  } catch (e) {
    if (e instanceof SeedFailure) throw new SeedFailure('baseline', e.details, 'generator-bug');
    throw e;
  }
}

function cryoFailure(phase: string, res: ReturnType<typeof dump>['res'], known: Known, built: string[]): SeedFailure {
  const blockers = refusal(res.stderr);
  if (!blockers) return new SeedFailure(phase, [`cryo exit ${res.code}: ${res.stderr.trim().split('\n')[0] ?? ''}`, cryoReport(res, 3000)]);
  const items = new Set(built.map(itemOf));
  const unexpected = blockers.filter((b) => !known.refused.some((k) => items.has(k.item) && b.includes(k.pattern)));
  if (!unexpected.length) return new SeedFailure(phase, blockers.map((b) => `refused: ${b}`), 'refused');
  return new SeedFailure(phase, unexpected.map((b) => `refused a supported state: ${b}`));
}

async function cycle(args: string[], seed: number, cfg: FuzzConfig, known: Known, built: string[]): Promise<void> {
  const lap = laps(seed);
  const t = await started(args, seed);
  built.push(...builtOf(t.log()));
  const pids = descendants(t.pid);
  lap('ready');
  const flags = { extraArgs: ['--file-locks'] };
  // Odd seeds: every task's pages from a copy-on-write snapshot, however little memory it has
  // (by default small trees are written frozen: dump/snapshot.ts snapshotMin).
  const env = seed % 2 ? { CRYO_SNAPSHOT_MIN: '0' } : undefined;
  const d1 = dump(t, 'leave', { ...flags, leaveRunning: true, env });
  if (d1.res.code !== 0) throw cryoFailure('dump-leave-running', d1.res, known, built);
  const running = runningProblem(t);
  if (running) throw new SeedFailure('dump-leave-running', [`after the dump: ${running}`]);
  lap('dump1');
  await selfCheck(t, 'check-after-leave-running');
  lap('check');
  const d2 = dump(t, 'kill', flags);
  if (d2.res.code !== 0) throw cryoFailure('dump', d2.res, known, built);
  for (const pid of pids)
    if (!(await waitPidGone(pid, 20_000))) throw new SeedFailure('dump', [`pid ${pid} still exists after the dump`]);
  if (cfg.crit) {
    try {
      await critDecodeAll(d2.dir);
    } catch (e) {
      throw new SeedFailure('crit', [(e as Error).message]);
    }
  }
  lap('dump2+gone');
  const r = restore(t, d2.dir, 'kill');
  lap('restore');
  if (r.res.code !== 0 || r.pidFromFile !== t.pid)
    throw new SeedFailure('restore', [`cryo exit ${r.res.code}, pidfile ${r.pidFromFile}: ${r.res.stderr.trim().split('\n')[0] ?? ''}`, cryoReport(r.res, 3000)]);
  descendants(t.pid);
  await goAndPass(t, 'check-after-restore');
  lap('checked');
}

/** Run one seed; never throws for what the target or cryo did (only for harness errors). */
export async function runSeed(seed: number, cfg: FuzzConfig, known: Known): Promise<SeedResult> {
  const args = targetArgs(seed, cfg, known);
  const built: string[] = [];
  const result = (outcome: Outcome, phase: string, details: string[]): SeedResult => ({
    seed,
    outcome,
    phase,
    built,
    blamed: [...new Set(details.filter((d) => /^[a-z0-9-]+(#\d+)?: /.test(d)).map(itemOf))],
    details,
    repro: reproLine(seed, cfg),
  });
  try {
    if (!cfg.noBaseline) await baseline(args, seed);
    await cycle(args, seed, cfg, known, built);
    return result('pass', '', []);
  } catch (e) {
    if (e instanceof SeedFailure) return result(e.outcome, e.phase, e.details);
    return result('fail', 'harness', [String((e as Error).message ?? e)]);
  } finally {
    await cleanupTrees();
  }
}

/** One line per result that is not a pass: what, where, the repro and the first details. */
export function describeResult(r: SeedResult): string {
  const head = `seed ${r.seed}: ${r.outcome} at ${r.phase || '-'}${r.blamed.length ? ` [${r.blamed.join(', ')}]` : ''}`;
  const built = r.built.length ? `\n  built: ${r.built.join(' ')}` : '';
  const det = r.details.slice(0, 12).map((d) => `\n  ${d.split('\n').join('\n  ')}`).join('');
  return `${head}\n  ${r.repro}${built}${det}`;
}

/** Totals and, per catalogue item, in how many seeds it was built, passed, refused, blamed. */
export function summarize(results: SeedResult[]): string {
  const count = (o: Outcome) => results.filter((r) => r.outcome === o).length;
  const lines = [
    `fuzz: ${results.length} seeds tried: ${count('pass')} passed, ${count('refused')} refused (known), ${count('fail')} failed, ${count('generator-bug')} generator bugs`,
  ];
  const per = new Map<string, { built: number; pass: number; refused: number; failed: number; blamed: number }>();
  for (const r of results) {
    const names = new Set(r.built.map(itemOf));
    for (const n of names) {
      const p = per.get(n) ?? { built: 0, pass: 0, refused: 0, failed: 0, blamed: 0 };
      p.built++;
      if (r.outcome === 'pass') p.pass++;
      if (r.outcome === 'refused') p.refused++;
      if (r.outcome === 'fail') p.failed++;
      if (r.outcome === 'fail' && r.blamed.includes(n)) p.blamed++;
      per.set(n, p);
    }
  }
  lines.push('item                 seeds  pass  refused  failed  blamed');
  for (const [n, p] of [...per].sort((a, b) => b[1].blamed - a[1].blamed || a[0].localeCompare(b[0])))
    lines.push(`${n.padEnd(20)} ${String(p.built).padStart(5)} ${String(p.pass).padStart(5)} ${String(p.refused).padStart(8)} ${String(p.failed).padStart(7)} ${String(p.blamed).padStart(7)}`);
  const phases = new Map<string, number>();
  for (const r of results) if (r.outcome === 'fail') phases.set(r.phase, (phases.get(r.phase) ?? 0) + 1);
  if (phases.size) lines.push(`failures by phase: ${[...phases].map(([p, n]) => `${p} ${n}`).join(', ')}`);
  return lines.join('\n');
}
