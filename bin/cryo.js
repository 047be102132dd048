#!/usr/bin/env node
// Entry point for `npx cryo`. The CLI is compiled into dist/ by tsc and bundled into one script,
// dist/cryo.cjs, by scripts/bundle.mjs (both run by `npm run build` and by "prepare" on `npm ci`).
// Start-up is most of a small dump's time (bench/startup.js), so:
// - `cryo --version` alone is answered here, before commander and the CLI load;
// - the bundle is preferred: one file to read and compile instead of ~370 ES modules to resolve,
//   read and compile one by one, and V8's compiled code of it is kept between runs (below). It is
//   used only when at least as new as dist/src/cli/main.js: tsc rewrites every file it emits, so
//   a `tsc` run after the bundle (the usual edit-build loop) makes it stale, and then dist/ runs
//   as it is. CRYO_NO_BUNDLE=1 runs dist/ always.
import { readFileSync, renameSync, statSync, writeFileSync } from 'node:fs';
import module, { createRequire } from 'node:module';
import vm from 'node:vm';

const args = process.argv.slice(2);
const dist = new URL('../dist/', import.meta.url).pathname;
const bundle = `${dist}cryo.cjs`;

/** mtime of a file in ms, or undefined when it is not there. */
function mtime(path) {
  try {
    return statSync(path).mtimeMs;
  } catch {
    return undefined;
  }
}

// One code cache per command: a dump compiles other functions than a restore, and the cache is
// only written when there was none (or V8 rejected it: another bundle, Node or V8 flags).
// Anything else (`cryo --help`, a typo) shares one.
const CACHED_COMMANDS = new Set(['check', 'dump', 'restore', 'show', 'demo']);

/**
 * Runs the bundle as a classic script with V8's code cache (Node 20 has no compile cache for ES
 * modules: module.enableCompileCache and NODE_COMPILE_CACHE are Node >= 22.1). The cache is
 * written at exit, so it holds the functions the run compiled, not only the top level. It lives
 * next to the bundle, in dist/, which whoever built cryo owns (and could change the bundle
 * itself), not in a shared /tmp where another user could plant one; when dist/ is not writable
 * there is just no cache.
 */
function runBundle() {
  const command = args.find((a) => !a.startsWith('-'));
  const cacheFile = `${bundle}.${CACHED_COMMANDS.has(command) ? command : 'other'}.cache`;
  const source = readFileSync(bundle, 'utf8');
  // V8 checks a cache against the source's length, not its text: the cache starts with the
  // bundle's mtime and size, and is not used for another bundle.
  const { mtimeMs, size } = statSync(bundle);
  const stamp = Buffer.from(`${mtimeMs} ${size}\n`);
  let cachedData;
  try {
    const c = readFileSync(cacheFile);
    if (c.subarray(0, stamp.length).equals(stamp)) cachedData = c.subarray(stamp.length);
  } catch {
    /* first run */
  }
  // The CommonJS wrapper on the source's first line: line numbers in stack traces stay the bundle's.
  const wrapped = `(function (exports, require, module, __filename, __dirname) {${source}\n})`;
  const script = new vm.Script(wrapped, { filename: bundle, cachedData });
  // The first run that writes the cache decides what it holds until the bundle changes: only a
  // run that did its command's work writes it (not a refusal, a failure, a usage error or a
  // command's --help, which compile a fraction of its functions: the rest would be compiled
  // again on every run).
  const commandHelp = CACHED_COMMANDS.has(command) && (args.includes('--help') || args.includes('-h'));
  if ((cachedData === undefined || script.cachedDataRejected) && !commandHelp) {
    process.once('exit', (code) => {
      if (code !== 0) return;
      try {
        const tmp = `${cacheFile}.${process.pid}`;
        writeFileSync(tmp, Buffer.concat([stamp, script.createCachedData()]));
        renameSync(tmp, cacheFile); // atomic: a concurrent run reads the old cache or the new
      } catch {
        /* read-only dist/: no cache */
      }
    });
  }
  const m = { exports: {} };
  script.runInThisContext()(m.exports, createRequire(bundle), m, bundle, dist);
}

if (args.length === 1 && (args[0] === '--version' || args[0] === '-V')) {
  const { VERSION } = await import('../dist/src/cli/version.js');
  process.stdout.write(`${VERSION}\n`);
} else {
  const built = mtime(bundle);
  const main = mtime(`${dist}src/cli/main.js`);
  if (!process.env.CRYO_NO_BUNDLE && built !== undefined && main !== undefined && built >= main) runBundle();
  else {
    // Node >= 22.1 keeps V8's compiled code of the ES modules between runs; Node 20 has no such
    // API: nothing happens. Same place and reason as the bundle's cache.
    module.enableCompileCache?.(`${dist}.compile-cache`);
    await import('../dist/src/cli/main.js');
  }
}
