// What cryo saves of a tree's own network namespace, read while the tree is frozen (the dump) or
// just to judge it (check), and the one restore of it: a new namespace made before any task or
// socket, filled, and held by an fd until the tree is in it.
import { openSync, closeSync, readFileSync } from 'node:fs';
import { Rtnl, AF, withNetns, newNetns, openNetns } from '../../sys/index.js';
import { UserError } from '../../util/errors.js';
import { readLinks, hostPeers, linkProblems, createLinks, linksUp, removeLinks, type NetLink } from './links.js';
import { readAddrs, addAddrs, settleAddrs } from './addrs.js';
import { readRoutes, addRoutes } from './routes.js';
import { readNetnsSysctls, readLinkSysctls, writeNetnsSysctls, writeLinkSysctls } from './sysctls.js';
import { readNft, writeNft, nftInstalled, nftProblem } from './nft.js';
import { netnsDifferences } from './verify.js';
import type { NetnsState } from './model.js';

export type { NetnsState } from './model.js';


/** The links of task `pid`'s namespace, each external veth with its name in cryo's. */
function readNamed(fd: number, rest: (rtnl: Rtnl) => void): NetLink[] {
  const links = withNetns(fd, () => {
    const rtnl = new Rtnl();
    try {
      const l = readLinks(rtnl);
      rest(rtnl);
      return l;
    } finally {
      rtnl.close();
    }
  });
  if (links.some((l) => l.peerNsid !== undefined)) {
    const host = new Rtnl();
    try {
      const peers = hostPeers(host, fd);
      for (const l of links) if (l.peerNsid !== undefined && peers.has(l.ifindex)) l.peerName = peers.get(l.ifindex)!;
    } finally {
      host.close();
    }
  }
  return links;
}

export function readNetns(pid: number): NetnsState {
  const fd = openNetns(pid);
  try {
    const s: NetnsState = { links: [], addrs: [], routes: [], routes6: [], sysctls: [], nft: null };
    s.links = readNamed(fd, (rtnl) => {
      s.addrs = readAddrs(rtnl);
      s.routes = readRoutes(rtnl, AF.INET);
      s.routes6 = readRoutes(rtnl, AF.INET6);
    });
    withNetns(fd, () => {
      s.sysctls = readNetnsSysctls();
      for (const l of s.links) l.sysctls = readLinkSysctls(l.name);
      s.nft = readNft();
    });
    return s;
  } finally {
    closeSync(fd);
  }
}

/** TCP states a socket of the namespace may be in: listening, closed, or TIME_WAIT (nobody's). */
const QUIET_TCP = new Set(['0A', '07', '06']);

/** Why the namespace of `pid` (the tree's root) cannot be checkpointed; empty when it can. */
export function netnsProblems(pid: number): string[] {
  const legacy = ['ip_tables_names', 'ip6_tables_names'].flatMap((f) => readLines(`/proc/${pid}/net/${f}`));
  const fd = openNetns(pid);
  let links: NetLink[];
  let nft: string | null;
  try {
    links = readNamed(fd, () => {});
    nft = withNetns(fd, () => nftProblem(legacy));
  } finally {
    closeSync(fd);
  }
  const out = linkProblems(links);
  if (nft) out.push(nft);
  for (const f of ['tcp', 'tcp6']) {
    let text = '';
    try {
      text = readFileSync(`/proc/${pid}/net/${f}`, 'utf8');
    } catch {
      continue;
    }
    const busy = text.split('\n').slice(1).filter((l) => l.trim() && !QUIET_TCP.has(l.trim().split(/\s+/)[3] ?? ''));
    if (busy.length) out.push(`${busy.length} TCP connection(s) (${f}) inside the tree's own network namespace — not supported`);
  }
  return out;
}

function readLines(file: string): string[] {
  try {
    return readFileSync(file, 'utf8').split('\n').filter(Boolean);
  } catch {
    return [];
  }
}

/** A restored namespace, held by `fd` while the tree is made; the host ends of external veths. */
export class NetnsRestore {
  private constructor(
    readonly fd: number,
    private readonly hostLinks: string[],
  ) {}

  /** Refusals found before anything is made (no nft for the images' rules). */
  static problems(s: NetnsState): string[] {
    return s.nft && !nftInstalled() ? ['the images hold nftables rules of the network namespace and nft is not installed'] : [];
  }

  /**
   * `outside`: --external veth[INSIDE]:OUTSIDE names; others keep the name they had. `inside`: the
   * path of a new namespace made already (one owned by the tree's user namespace), else a new one.
   */
  static create(s: NetnsState, outside: Map<string, string>, inside?: string): NetnsRestore {
    const fd = inside ? openSync(inside, 'r') : newNetns();
    const made: string[] = [];
    const hostFd = openNetns(process.pid);
    try {
      withNetns(fd, () => {
        writeNetnsSysctls(s.sysctls);
        const rtnl = new Rtnl();
        try {
          createLinks(rtnl, s.links, (l) => outside.get(l.name) ?? l.peerName ?? '', hostFd, made);
          for (const l of s.links) writeLinkSysctls(l.name, l.sysctls);
          const lo = s.links.find((l) => l.kind === 'loopback')?.ifindex ?? 1;
          addAddrs(rtnl, s.addrs, lo);
          linksUp(rtnl, s.links);
          settleAddrs(rtnl, s.addrs, lo);
          addRoutes(rtnl, [...s.routes, ...s.routes6]);
        } finally {
          rtnl.close();
        }
        if (s.nft) writeNft(s.nft);
      });
    } catch (e) {
      removeHostLinks(made);
      closeSync(fd);
      throw e instanceof UserError ? e : new UserError(`the network namespace: ${(e as Error).message}`);
    } finally {
      closeSync(hostFd);
    }
    return new NetnsRestore(fd, made);
  }

  /**
   * The namespace compared with the images (verify.ts): 'on' throws on a difference, 'warn'
   * reports each and goes on, 'off' does not look.
   */
  verify(s: NetnsState, mode: 'on' | 'warn' | 'off', report: (line: string) => void): string[] {
    if (mode === 'off') return [];
    const diffs = this.run(() => netnsDifferences(s));
    if (diffs.length && mode === 'on') throw new UserError(`the restored network namespace differs from the images, nothing was resumed: ${diffs.join('; ')}`);
    for (const d of diffs) report(`network namespace: ${d}`);
    return diffs;
  }

  /** Runs `fn` inside the namespace (what it creates, sockets and processes, is born there). */
  run<T>(fn: () => T): T {
    return withNetns(this.fd, fn);
  }

  /** After a failed restore: the host ends go now (the namespace itself goes with its last user). */
  abort(): void {
    removeHostLinks(this.hostLinks);
  }

  close(): void {
    closeSync(this.fd);
  }
}

function removeHostLinks(names: string[]): void {
  if (!names.length) return;
  const host = new Rtnl();
  try {
    removeLinks(host, names);
  } finally {
    host.close();
  }
}
