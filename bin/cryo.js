#!/usr/bin/env node
// Entry point for `npx cryo`: the compiled CLI lives in dist/ (built by `npm ci` via "prepare").
// `cryo --version` alone is answered here, before commander and the CLI load.
import module from 'node:module';

const args = process.argv.slice(2);
if (args.length === 1 && (args[0] === '--version' || args[0] === '-V')) {
  const { VERSION } = await import('../dist/src/cli/version.js');
  process.stdout.write(`${VERSION}\n`);
} else {
  // Node >= 22.1 keeps V8's compiled code of the modules between runs (most of a dump's start-up
  // is loading them). The cache goes next to dist/, which whoever built cryo owns, not in a
  // shared /tmp where another user could plant one. Node 20 has no such API: nothing happens.
  module.enableCompileCache?.(new URL('../dist/.compile-cache', import.meta.url).pathname);
  await import('../dist/src/cli/main.js');
}
