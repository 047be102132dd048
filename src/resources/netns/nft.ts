// nftables rules of a network namespace: `nft -j list ruleset` run inside it (withNetns: nft
// inherits the calling thread's namespace), given back to `nft -j -f FILE` inside the new one
// (from a file: nft reads /dev/stdin, which a socket — Node's stdio — cannot be opened as; a
// CRIU image holds nft's text, given to `nft -f`). Refused by check and dump (nftProblem): tables
// in the namespace with no nft on the machine to save them (asked through NETLINK_NETFILTER),
// rules nft shows as xtables compat ("xt", made by iptables-nft: nft cannot make them again), and
// legacy iptables tables (invisible to nft). Images with rules and no nft are refused at restore
// before any task exists.
import { spawnSync } from 'node:child_process';
import { mkdtempSync, writeFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { UserError } from '../../util/errors.js';
import { Rtnl, NETLINK_NETFILTER, SysError, E } from '../../sys/index.js';

/** The ruleset as nft's JSON, or null when it is empty or nft is not installed. */
export function readNft(): string | null {
  const r = spawnSync('nft', ['-j', 'list', 'ruleset'], { encoding: 'utf8', timeout: 30_000 });
  if (r.error && (r.error as NodeJS.ErrnoException).code === 'ENOENT') return null;
  if (r.error || r.status !== 0) throw new UserError(`nft -j list ruleset in the tree's network namespace failed: ${(r.stderr || r.error?.message || `exit ${r.status}`).trim()}`);
  const parsed = JSON.parse(r.stdout) as { nftables?: Record<string, unknown>[] };
  return (parsed.nftables ?? []).some((o) => 'table' in o) ? r.stdout : null;
}

/** NFNL_SUBSYS_NFTABLES << 8 | NFT_MSG_GETTABLE, over a struct nfgenmsg (AF_UNSPEC, version 0). */
const NFT_GETTABLE = (10 << 8) | 1;

/** Whether the calling thread's namespace has nf_tables tables (without nft). */
function hasNfTables(): boolean {
  let nl: Rtnl;
  try {
    nl = new Rtnl(NETLINK_NETFILTER);
  } catch (e) {
    if (e instanceof SysError && e.errno === E.EPROTONOSUPPORT) return false; // no nfnetlink: no tables
    throw e;
  }
  try {
    return nl.dump(NFT_GETTABLE, Buffer.alloc(4)).length > 0;
  } catch (e) {
    if (e instanceof SysError && (e.errno === E.EOPNOTSUPP || e.errno === E.ENOENT)) return false; // no nf_tables
    throw e;
  } finally {
    nl.close();
  }
}

/** Why the rules of the calling thread's namespace cannot be saved, or null. */
export function nftProblem(legacyTables: string[]): string | null {
  if (legacyTables.length) return `legacy iptables tables (${legacyTables.join(', ')}) — not supported (nft cannot see them)`;
  if (!nftInstalled()) return hasNfTables() ? 'nftables tables and no nft on this machine to save them' : null;
  const json = readNft();
  return json && /"xt"\s*:/.test(json) ? 'nftables rules with xtables (iptables-nft) expressions — nft cannot make them again' : null;
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
    const r = spawnSync('nft', [...(/^\s*\{/.test(json) ? ['-j'] : []), '-f', file], { encoding: 'utf8', timeout: 30_000 });
    if (r.error || r.status !== 0) throw new UserError(`nft -f in the new network namespace failed: ${(r.stderr || r.error?.message || `exit ${r.status}`).trim()}`);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
