// Building the C test targets (test/targets/NAME.c) with the system compiler.
//
// Binaries go to a content-addressed cache under os.tmpdir() (the hash covers the sources, the
// headers and the flags), so they are compiled once per run and reused across runs while the
// sources are unchanged. A binary is never rewritten in place: restored processes map it.

import { spawnSync } from 'node:child_process';
import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';

/** Repository root: this file runs as dist/test/lib/build.js. */
export const REPO_ROOT = process.env.CRYO_REPO_ROOT ?? fileURLToPath(new URL('../../../', import.meta.url));
export const TARGETS_SRC = path.join(REPO_ROOT, 'test', 'targets');
export const BUILD_CACHE = path.join(os.tmpdir(), 'cryo-test-targets');
/** CRIU 4.2's reference images: $CRYO_FIXTURES, else shared/ beside the checkout, else /work/shared. */
export const FIXTURES =
  process.env.CRYO_FIXTURES ??
  [path.join(REPO_ROOT, '..', 'shared', 'fixtures', 'criu-4.2-images'), '/work/shared/fixtures/criu-4.2-images'].find((d) => fs.existsSync(d)) ??
  '/work/shared/fixtures/criu-4.2-images';

let cpuFlagsCache: Set<string> | undefined;

/** Flags of the first CPU in /proc/cpuinfo. */
export function cpuFlags(): Set<string> {
  if (!cpuFlagsCache) {
    const text = fs.readFileSync('/proc/cpuinfo', 'utf8');
    const line = text.split('\n').find((l) => l.startsWith('flags'));
    cpuFlagsCache = new Set((line?.split(':')[1] ?? '').trim().split(/\s+/));
  }
  return cpuFlagsCache;
}

/** Compiler flags for a target: -O1 -g, plus ISA extensions for regs only when the CPU has them. */
export function targetCFlags(name: string): string[] {
  const flags = ['-O1', '-g', '-Wall', '-Wextra', '-D_GNU_SOURCE'];
  if (name === 'regs') {
    const cpu = cpuFlags();
    if (cpu.has('avx')) flags.push('-mavx');
    if (cpu.has('avx512f')) flags.push('-mavx512f');
    if (cpu.has('avx512f') && cpu.has('avx512bw')) flags.push('-mavx512bw');
  }
  return flags;
}

const built = new Map<string, string>();

/** Compile test/targets/NAME.c (with its parts in NAME/, once per run); returns the binary's path. */
export function buildTarget(name: string): string {
  const cached = built.get(name);
  if (cached) return cached;
  const src = path.join(TARGETS_SRC, `${name}.c`);
  if (!fs.existsSync(src)) throw new Error(`no such target source: ${src}`);
  const flags = targetCFlags(name);
  const hash = crypto.createHash('sha256');
  hash.update(flags.join(' '));
  hash.update(fs.readFileSync(src));
  for (const h of fs.readdirSync(TARGETS_SRC).filter((f) => f.endsWith('.h')).sort()) {
    hash.update(h);
    hash.update(fs.readFileSync(path.join(TARGETS_SRC, h)));
  }
  // A large target keeps its parts in test/targets/NAME/ and #includes them (one translation
  // unit): they count for the hash like its own source.
  const partsDir = path.join(TARGETS_SRC, name);
  if (fs.existsSync(partsDir))
    for (const f of fs.readdirSync(partsDir).filter((f) => /\.[ch]$/.test(f)).sort()) {
      hash.update(`${name}/${f}`);
      hash.update(fs.readFileSync(path.join(partsDir, f)));
    }
  fs.mkdirSync(BUILD_CACHE, { recursive: true });
  const out = path.join(BUILD_CACHE, `${name}-${hash.digest('hex').slice(0, 16)}`);
  if (!fs.existsSync(out)) {
    const tmp = `${out}.tmp-${process.pid}`;
    const r = spawnSync('cc', [...flags, '-o', tmp, src], { encoding: 'utf8', timeout: 120_000 });
    if (r.status !== 0) {
      fs.rmSync(tmp, { force: true });
      throw new Error(
        `building target ${name} failed: cc ${[...flags, '-o', tmp, src].join(' ')}\n` +
          `${r.error ? String(r.error) + '\n' : ''}${r.stderr}${r.stdout}`,
      );
    }
    fs.renameSync(tmp, out);
  }
  built.set(name, out);
  return out;
}
