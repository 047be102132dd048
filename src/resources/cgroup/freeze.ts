// Freezing a tree through its cgroup (--freeze-cgroup, cgroup v2): write 1 to cgroup.freeze and
// wait for `frozen 1` in cgroup.events. Once frozen no task of the cgroup runs or forks, so the
// ptrace freeze that follows (dump/freeze.ts) meets a fixed tree however fast it forks. The tasks
// are then held by ptrace and the cgroup is thawed (a frozen task could not run the calls a dump
// injects); it is thawed on every exit path, and by the guard (freeze-guard.ts) if cryo dies.
//
// Also here: a task already in a frozen cgroup (someone else's freeze, v2 or the v1 freezer) is
// a blocker whether or not --freeze-cgroup is given: ptrace can stop it, but it would never run
// an injected call, and the dump would wait for ever.
import { readFileSync, writeFileSync, existsSync, realpathSync } from 'node:fs';
import { dirname } from 'node:path';
import type { Blocker } from '../../util/blocker.js';
import { UserError } from '../../util/errors.js';
import { sleepMs } from '../../util/sleep.js';
import { checkInterrupt } from '../../sys/index.js';
import { parseCgroups } from '../task/cgroup.js';
import { unifiedMount, cgroupMounts, cgroupDir, v2PathOf, cgroupsBelow, procsOf, keyedValue, type CgroupMount } from './hierarchy.js';

/** How long a cgroup may take to report `frozen 1` before the dump gives up (and thaws it). */
const FREEZE_TIMEOUT_MS = 10_000;

const readTrim = (file: string) => readFileSync(file, 'utf8').trim();

/** The cgroup directories from `dir` up to (not including) the hierarchy's root. */
function selfAndAncestors(m: CgroupMount, dir: string): string[] {
  const out: string[] = [];
  for (let d = dir; d.length > m.dir.length && d.startsWith(m.dir); d = dirname(d)) out.push(d);
  return out;
}

/** A blocker when task `pid` sits in a frozen (or freezing) cgroup, v2 or v1 freezer. */
export function frozenCgroupBlocker(pid: number): Blocker | null {
  let members;
  try {
    members = parseCgroups(readFileSync(`/proc/${pid}/cgroup`, 'utf8'));
  } catch {
    return null; // gone: not part of the tree
  }
  const mounts = cgroupMounts();
  for (const mem of members) {
    const m = mounts.get(mem.name.split(',').sort().join(','));
    const dir = m ? cgroupDir(m, mem.path) : null;
    if (!m || !dir) continue;
    if (mem.name === '') {
      const frozen = selfAndAncestors(m, dir).find((d) => existsSync(`${d}/cgroup.freeze`) && readTrim(`${d}/cgroup.freeze`) === '1');
      if (frozen) return { pid, kind: 'cgroup', reason: `its cgroup is frozen (${frozen}/cgroup.freeze is 1) by someone else — a frozen task cannot be checkpointed`, hint: 'thaw it first (echo 0 > cgroup.freeze)' };
    } else if (mem.name.split(',').includes('freezer') && existsSync(`${dir}/freezer.state`)) {
      const state = readTrim(`${dir}/freezer.state`);
      if (state !== 'THAWED') return { pid, kind: 'cgroup', reason: `its v1 freezer cgroup ${dir} is ${state} — a frozen task cannot be checkpointed`, hint: 'thaw it first (echo THAWED > freezer.state)' };
    }
  }
  return null;
}

/** Whether process `pid` is `root` or below it; 'gone' when it ended while we looked. */
function descendsFrom(pid: number, root: number): boolean | 'gone' {
  for (let p = pid, hops = 0; hops < 4096; hops++) {
    if (p === root) return true;
    if (p <= 1) return false;
    try {
      const stat = readFileSync(`/proc/${p}/stat`, 'utf8');
      p = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
    } catch {
      return 'gone';
    }
  }
  return false;
}

/** The cgroup --freeze-cgroup freezes: its directory, or the reason it cannot be. */
export interface FreezeTarget {
  dir: string;
}

/**
 * Judges --freeze-cgroup for the tree under `root` (`request`: the cgroup directory given, or ''
 * for the root's own v2 cgroup). The cgroup must be a domain cgroup of the v2 hierarchy that
 * holds the root, holds no process outside the tree, and does not hold cryo.
 */
export function freezeTargetOf(root: number, request: string): { target: FreezeTarget | null; blockers: Blocker[] } {
  const refuse = (reason: string, hint?: string) => ({ target: null, blockers: [{ pid: root, kind: 'cgroup', reason: `--freeze-cgroup: ${reason}`, ...(hint ? { hint } : {}) }] });
  const m = unifiedMount();
  if (!m) return refuse('no cgroup v2 hierarchy is mounted here');
  const path = v2PathOf(root);
  const own = path === null ? null : cgroupDir(m, path);
  if (!own) return refuse(`its v2 cgroup (${path ?? 'none'}) is not visible at ${m.dir}`);
  let dir = own;
  if (request) {
    try {
      dir = realpathSync(request);
    } catch (e) {
      return refuse(`${request}: ${(e as Error).message}`);
    }
    if (!dir.startsWith(`${m.dir}/`) || !existsSync(`${dir}/cgroup.freeze`)) return refuse(`${request} is not a cgroup of the v2 hierarchy at ${m.dir}`);
    if (own !== dir && !own.startsWith(`${dir}/`)) return refuse(`the tree's root is in ${own}, not in ${dir}`);
  }
  if (dir === m.dir || !existsSync(`${dir}/cgroup.freeze`)) return refuse(`the tree is in the root cgroup of ${m.dir}, not in a cgroup of its own`, 'move it into a cgroup of its own');
  const mine = cgroupDir(m, v2PathOf('self') ?? '/');
  if (mine && (mine === dir || mine.startsWith(`${dir}/`))) return refuse(`${dir} holds cryo itself`);
  const blockers: Blocker[] = [];
  for (const d of cgroupsBelow(dir)) {
    const type = readTrim(`${d}/cgroup.type`);
    if (type !== 'domain') {
      blockers.push({ pid: root, kind: 'cgroup', reason: `--freeze-cgroup: ${d} is a ${type} cgroup (cgroup.type) — threaded cgroups are not supported` });
      continue; // a threaded cgroup has no cgroup.procs to read (EOPNOTSUPP)
    }
    for (const p of procsOf(d)) {
      if (descendsFrom(p, root) === false) blockers.push({ pid: p, kind: 'cgroup', reason: `--freeze-cgroup: in ${d} but not in the tree of ${root} — freezing the cgroup would freeze it too` });
    }
  }
  return { target: blockers.length ? null : { dir }, blockers };
}

/** A task of the tree outside the frozen cgroup: nothing holds it still. */
export function outsideBlocker(target: FreezeTarget, pid: number): Blocker | null {
  const m = unifiedMount();
  const path = v2PathOf(pid);
  const dir = m && path !== null ? cgroupDir(m, path) : null;
  if (dir === target.dir || dir?.startsWith(`${target.dir}/`)) return null;
  return { pid, kind: 'cgroup', reason: `--freeze-cgroup: in ${dir ?? path ?? 'no v2 cgroup'}, outside ${target.dir}` };
}

export class CgroupFreeze {
  private frozen = false;

  constructor(readonly target: FreezeTarget) {}

  /** Writes 1 to cgroup.freeze and waits for `frozen 1`; on a timeout or an interrupt, thaws and throws. */
  freeze(): { ms: number } {
    const t0 = performance.now();
    const { dir } = this.target;
    if (readTrim(`${dir}/cgroup.freeze`) !== '0') throw new UserError(`--freeze-cgroup: ${dir} is frozen already (by someone else)`);
    this.frozen = true;
    writeFileSync(`${dir}/cgroup.freeze`, '1');
    for (let i = 0; keyedValue(`${dir}/cgroup.events`, 'frozen') !== '1'; i++) {
      checkInterrupt();
      if (performance.now() - t0 > FREEZE_TIMEOUT_MS) {
        this.thaw();
        throw new UserError(`--freeze-cgroup: ${dir} did not report frozen within ${FREEZE_TIMEOUT_MS / 1000} s (cgroup.events); thawed`);
      }
      sleepMs(i < 100 ? 0.2 : 2);
    }
    return { ms: performance.now() - t0 };
  }

  /** Writes 0 to cgroup.freeze (once; a no-op when not frozen by us). */
  thaw(): void {
    if (!this.frozen) return;
    this.frozen = false;
    writeFileSync(`${this.target.dir}/cgroup.freeze`, '0');
  }
}
