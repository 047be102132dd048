// The network lock: while a tree is frozen (and until the restored one runs) no packet of its TCP
// connections may reach either end, or the kernel would answer it (an ACK the image does not
// know of, a RST from a socket that is gone). cryo drops them in a firewall table of its own,
// one per dump, named after the cryo process that made it (pid and start time) so that a table
// whose owner died without removing it (SIGKILL) is recognised and removed by sweepLeftovers().
//
// nftables (default): table `inet cryo-<pid>-<start>-<n>`, two sets of 4-tuples (both
// directions of each connection), input and output chains that drop what matches, made and
// removed in one `nft -f` transaction each. Packets carrying CRYO_MARK pass (the FIN a restore
// replays, tcp-fin.ts; cryo's own traffic to come, e.g. a page server on the same addresses).
// A dump that kills its tasks keeps its lock (`cryoh-...`, held for the restore) so that peers
// outside the tree never reach the closed sockets; the restore adopts and removes it; sweeps
// leave held locks alone.
// iptables (fallback): a chain `CRYO-<pid>-<start>-<n>` in the filter table of iptables and
// ip6tables, jumped to from INPUT and OUTPUT.
// skip: no lock (the caller's choice: e.g. the network is already isolated).
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import { AF, type InetAddr } from '../../sys/index.js';
import { parseStat } from '../../proc/stat.js';

export type NetworkLockMode = 'nftables' | 'iptables' | 'skip';
export const NETWORK_LOCK_MODES: readonly NetworkLockMode[] = ['nftables', 'iptables', 'skip'];

/** --network-lock's value, checked. */
export function parseNetworkLockMode(s: string): NetworkLockMode {
  if ((NETWORK_LOCK_MODES as readonly string[]).includes(s)) return s as NetworkLockMode;
  throw new Error(`--network-lock must be one of ${NETWORK_LOCK_MODES.join(', ')}, not "${s}"`);
}

/** Packets with this mark pass the lock ("cryo" in ASCII). */
export const CRYO_MARK = 0x6372796f;

/** One TCP connection, seen from the side being dumped. */
export interface TcpTuple {
  src: InetAddr;
  dst: InetAddr;
}

export interface NetworkLock {
  readonly mode: NetworkLockMode;
  /** Table (nftables) or chain (iptables) name; '' for skip. */
  readonly name: string;
  /** Removes the lock; safe to call more than once. Throws if the firewall refuses. */
  release(): void;
  /**
   * A lock made `heldForRestore`, after a dump that killed its tasks: it stays when this
   * process exits (the peers outside must not reach the closed sockets), until the restore
   * takes it over (adoptLock) and releases it. Throws for other locks.
   */
  keep(): void;
}

/**
 * What marks a name as cryo's and says whose it is: held for a restore ("cryoh"), owner pid,
 * owner start time, sequence. (iptables chain names are at most 28 characters: this fits.)
 */
const NAME_RE = /^cryo(h?)-(\d+)-(\d+)-(\d+)$/i;

function startTimeOf(pid: number): string | null {
  try {
    return parseStat(fs.readFileSync(`/proc/${pid}/stat`, 'utf8')).startTime.toString();
  } catch {
    return null;
  }
}

let sequence = 0;
const held = new Set<NetworkLock>();

// A normal exit (an exception that ends the process included) must not leave a table behind.
// Signals end the process through the engine's own handlers, which release first; SIGKILL
// cannot be caught: that is what sweepLeftovers() is for.
process.once('exit', () => {
  for (const l of [...held]) {
    try {
      l.release();
    } catch {
      // Nothing more can be done on the way out; the next run's sweep finds it.
    }
  }
});

function run(cmd: string, args: string[], input?: string): { ok: boolean; out: string; err: string } {
  const r = spawnSync(cmd, args, { input, encoding: 'utf8', timeout: 30_000 });
  if (r.error) return { ok: false, out: '', err: `${cmd}: ${r.error.message}` };
  return { ok: r.status === 0, out: r.stdout ?? '', err: (r.stderr ?? '').trim() };
}

function ipText(a: InetAddr): string {
  if (a.family === AF.INET) return [...a.addr].join('.');
  return Array.from({ length: 8 }, (_, i) => a.addr.readUInt16BE(i * 2).toString(16)).join(':');
}

/** nft elements "src . sport . dst . dport" for both directions of each tuple of one family. */
function nftElements(tuples: TcpTuple[], family: number): string[] {
  const out: string[] = [];
  for (const t of tuples.filter((x) => x.src.family === family)) {
    out.push(`${ipText(t.src)} . ${t.src.port} . ${ipText(t.dst)} . ${t.dst.port}`);
    out.push(`${ipText(t.dst)} . ${t.dst.port} . ${ipText(t.src)} . ${t.src.port}`);
  }
  return out;
}

function nftScript(name: string, tuples: TcpTuple[]): string {
  const set = (setName: string, type: string, elems: string[]) =>
    `  set ${setName} { type ${type} . inet_service . ${type} . inet_service; ${elems.length ? `elements = { ${elems.join(', ')} }` : ''} }\n`;
  const chain = (hook: string) =>
    `  chain ${hook} { type filter hook ${hook} priority -300; policy accept;\n` +
    `    meta mark 0x${CRYO_MARK.toString(16)} accept\n` +
    `    ip saddr . tcp sport . ip daddr . tcp dport @conn4 counter drop\n` +
    `    ip6 saddr . tcp sport . ip6 daddr . tcp dport @conn6 counter drop\n  }\n`;
  return `table inet ${name} {\n${set('conn4', 'ipv4_addr', nftElements(tuples, AF.INET))}${set('conn6', 'ipv6_addr', nftElements(tuples, AF.INET6))}${chain('input')}${chain('output')}}\n`;
}

function nftDelete(name: string): void {
  const r = run('nft', ['delete', 'table', 'inet', name]);
  // Gone already (released twice, or swept by another run) is what we wanted.
  if (!r.ok && !/No such file or directory/.test(r.err)) throw new Error(`cannot remove the network lock (nft table ${name}): ${r.err}`);
}

const IPT = ['iptables', 'ip6tables'] as const;

function iptRules(tuples: TcpTuple[], family: number): string[][] {
  const out: string[][] = [];
  for (const t of tuples.filter((x) => x.src.family === family)) {
    for (const [a, b] of [[t.src, t.dst], [t.dst, t.src]] as const) {
      out.push(['-p', 'tcp', '-s', ipText(a), '--sport', String(a.port), '-d', ipText(b), '--dport', String(b.port), '-j', 'DROP']);
    }
  }
  return out;
}

function iptDelete(name: string): string[] {
  const errors: string[] = [];
  for (const cmd of IPT) {
    // Unhook first (a jump keeps the chain from being deleted); absent parts are not errors.
    for (const hook of ['INPUT', 'OUTPUT']) while (run(cmd, ['-w', '-D', hook, '-j', name]).ok);
    run(cmd, ['-w', '-F', name]);
    const r = run(cmd, ['-w', '-X', name]);
    if (!r.ok && !/No chain|does not exist|not found/i.test(r.err)) errors.push(`${cmd}: ${r.err}`);
  }
  return errors;
}

function iptCreate(name: string, tuples: TcpTuple[]): void {
  for (const [i, cmd] of IPT.entries()) {
    const family = i === 0 ? AF.INET : AF.INET6;
    const steps: string[][] = [['-N', name], ['-A', name, '-m', 'mark', '--mark', `0x${CRYO_MARK.toString(16)}`, '-j', 'RETURN']];
    for (const rule of iptRules(tuples, family)) steps.push(['-A', name, ...rule]);
    steps.push(['-I', 'INPUT', '1', '-j', name], ['-I', 'OUTPUT', '1', '-j', name]);
    for (const s of steps) {
      const r = run(cmd, ['-w', ...s]);
      if (!r.ok) throw new Error(`cannot lock the network with ${cmd} (${s.join(' ')}): ${r.err}`);
    }
  }
}

/**
 * Locks the network for these connections. Throws, leaving nothing behind, if the firewall
 * refuses; the caller must then not freeze anything it would dump with --tcp-established.
 */
export function lockNetwork(mode: NetworkLockMode, tuples: TcpTuple[], opts: { heldForRestore?: boolean; onName?: (name: string) => void } = {}): NetworkLock {
  if (mode === 'skip') return { mode, name: '', release() {}, keep() {} };
  const start = startTimeOf(process.pid) ?? '0';
  const prefix = (mode === 'nftables' ? 'cryo' : 'CRYO') + (opts.heldForRestore ? 'h' : '');
  const name = `${prefix}-${process.pid}-${start}-${sequence++}`;
  // Told before the table exists: whoever must remove it if we die knows it in time.
  opts.onName?.(name);
  if (mode === 'nftables') {
    const r = run('nft', ['-f', '-'], nftScript(name, tuples));
    // One transaction: a refused script created nothing.
    if (!r.ok) throw new Error(`cannot lock the network with nftables: ${r.err}`);
  } else {
    try {
      iptCreate(name, tuples);
    } catch (e) {
      iptDelete(name);
      throw e;
    }
  }
  return lockHandle(mode, name, opts.heldForRestore === true);
}

/** Removes a lock by name (the dump's guard, after cryo died); gone already is fine. */
export function removeLock(mode: 'nftables' | 'iptables', name: string): void {
  if (!NAME_RE.test(name)) throw new Error(`${name} is not the name of one of cryo's network locks`);
  if (mode === 'nftables') nftDelete(name);
  else {
    const errors = iptDelete(name);
    if (errors.length) throw new Error(`cannot remove the network lock (chain ${name}): ${errors.join('; ')}`);
  }
}

/** Whether a lock of that name is in the firewall. */
export function lockExists(mode: 'nftables' | 'iptables', name: string): boolean {
  return listLocks().some((l) => l.mode === mode && l.name === name);
}

/** The lock a dump kept (its name, from the images), for the restore to release. */
export function adoptLock(mode: 'nftables' | 'iptables', name: string): NetworkLock {
  const m = NAME_RE.exec(name);
  if (!m || !m[1]) throw new Error(`${name} is not the name of a network lock cryo keeps for a restore`);
  return lockHandle(mode, name, true);
}

function lockHandle(mode: 'nftables' | 'iptables', name: string, heldForRestore: boolean): NetworkLock {
  let released = false;
  const lock: NetworkLock = {
    mode,
    name,
    keep() {
      if (!heldForRestore) throw new Error(`network lock ${name} was not made to outlive its process`);
      held.delete(lock);
    },
    release() {
      if (released) return;
      if (mode === 'nftables') nftDelete(name);
      else {
        const errors = iptDelete(name);
        if (errors.length) throw new Error(`cannot remove the network lock (chain ${name}): ${errors.join('; ')}`);
      }
      released = true;
      held.delete(lock);
    },
  };
  held.add(lock);
  return lock;
}

/** Names of cryo's locks present in the firewall (nftables tables, iptables chains). */
export function listLocks(): { mode: 'nftables' | 'iptables'; name: string; heldForRestore: boolean }[] {
  const out: { mode: 'nftables' | 'iptables'; name: string; heldForRestore: boolean }[] = [];
  const heldName = (n: string) => NAME_RE.exec(n)![1] !== '';
  const nft = run('nft', ['list', 'tables', 'inet']);
  if (nft.ok) for (const m of nft.out.matchAll(/^table inet (\S+)$/gm)) if (NAME_RE.test(m[1]!)) out.push({ mode: 'nftables', name: m[1]!, heldForRestore: heldName(m[1]!) });
  for (const cmd of IPT) {
    const r = run(cmd, ['-w', '-S']);
    if (!r.ok) continue;
    for (const m of r.out.matchAll(/^-N (\S+)$/gm)) {
      if (NAME_RE.test(m[1]!) && !out.some((o) => o.mode === 'iptables' && o.name === m[1])) out.push({ mode: 'iptables', name: m[1]!, heldForRestore: heldName(m[1]!) });
    }
  }
  return out;
}

/**
 * Removes the locks of cryo runs that are gone (no process with the owner's pid and start
 * time). A live run's lock is left alone, and so is one held for a restore (its dump ended
 * on purpose; the restore, or the user, removes it). Returns the names removed.
 */
export function sweepLeftovers(): string[] {
  const removed: string[] = [];
  for (const l of listLocks()) {
    const m = NAME_RE.exec(l.name)!;
    if (l.heldForRestore || startTimeOf(Number(m[2])) === m[3]) continue;
    if (l.mode === 'nftables') nftDelete(l.name);
    else if (iptDelete(l.name).length) continue;
    removed.push(l.name);
  }
  return removed;
}
