// nftables rules of a network namespace: `nft -j list ruleset` run inside it (withNetns: nft
// inherits the calling thread's namespace), given back to `nft -j -f -` inside the new one
// (from a file: nft reads /dev/stdin, which a socket — Node's stdio — cannot be opened as). No
// nft on the machine: nothing is saved at dump (a namespace cannot hold rules nobody could have
// set... except through libnftnl directly: known limit), and images holding rules are refused at
// restore before any task exists.
import { spawnSync } from 'node:child_process';
import { mkdtempSync, writeFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { UserError } from '../../util/errors.js';

/** The ruleset as nft's JSON, or null when it is empty or nft is not installed. */
export function readNft(): string | null {
  const r = spawnSync('nft', ['-j', 'list', 'ruleset'], { encoding: 'utf8', timeout: 30_000 });
  if (r.error && (r.error as NodeJS.ErrnoException).code === 'ENOENT') return null;
  if (r.error || r.status !== 0) throw new UserError(`nft -j list ruleset in the tree's network namespace failed: ${(r.stderr || r.error?.message || `exit ${r.status}`).trim()}`);
  const parsed = JSON.parse(r.stdout) as { nftables?: Record<string, unknown>[] };
  return (parsed.nftables ?? []).some((o) => 'table' in o) ? r.stdout : null;
}

export function nftInstalled(): boolean {
  const r = spawnSync('nft', ['--version'], { encoding: 'utf8' });
  return !r.error && r.status === 0;
}

/** The ruleset into the calling thread's namespace (from a private file: nft cannot read a pipe Node gives it). */
export function writeNft(json: string): void {
  const dir = mkdtempSync(join(tmpdir(), 'cryo-nft-'));
  try {
    const file = join(dir, 'ruleset.json');
    writeFileSync(file, json, { mode: 0o600 });
    const r = spawnSync('nft', ['-j', '-f', file], { encoding: 'utf8', timeout: 30_000 });
    if (r.error || r.status !== 0) throw new UserError(`nft -j -f in the new network namespace failed: ${(r.stderr || r.error?.message || `exit ${r.status}`).trim()}`);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
