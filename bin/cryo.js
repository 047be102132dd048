#!/usr/bin/env node
// Entry point for `npx cryo`: the compiled CLI lives in dist/ (built by `npm ci` via "prepare").
// `cryo --version` alone is answered here, before commander and the CLI load.
const args = process.argv.slice(2);
if (args.length === 1 && (args[0] === '--version' || args[0] === '-V')) {
  const { VERSION } = await import('../dist/src/cli/version.js');
  process.stdout.write(`${VERSION}\n`);
} else {
  await import('../dist/src/cli/main.js');
}
