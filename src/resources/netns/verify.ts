// The restored namespace read back and compared with the images before anything is made in it:
// each link (by ifindex: name, MTU, MAC address, up), each address, each route the restore sent
// (its destination, gateway, link, metric), each sysctl. A difference names what; the restore
// then fails before any task exists (or, with --verify=warn, reports it and goes on).
import { Rtnl, AF, nlAttrs, nlBody } from '../../sys/index.js';
import { readLinks, IFF_UP, type NetLink } from './links.js';
import { readAddrs, addrOf, describeAddr } from './addrs.js';
import { readRoutes, sentRoutes } from './routes.js';
import { readNetnsSysctls, readLinkSysctls } from './sysctls.js';
import type { NetnsState } from './model.js';

const hex = (b?: Buffer) => b?.toString('hex') ?? '';

function linkDifferences(want: NetLink[], have: NetLink[]): string[] {
  const out: string[] = [];
  for (const w of want) {
    const h = have.find((l) => l.ifindex === w.ifindex);
    if (!h) {
      out.push(`link ${w.name} (ifindex ${w.ifindex}) is missing`);
      continue;
    }
    if (h.name !== w.name) out.push(`link ${w.ifindex} is named ${h.name}, was ${w.name}`);
    if (h.mtu !== w.mtu) out.push(`link ${w.name} mtu ${h.mtu}, was ${w.mtu}`);
    if (w.kind !== 'loopback' && hex(h.address) !== hex(w.address)) out.push(`link ${w.name} address ${hex(h.address)}, was ${hex(w.address)}`);
    if ((h.flags & IFF_UP) !== (w.flags & IFF_UP)) out.push(`link ${w.name} is ${h.flags & IFF_UP ? 'up' : 'down'}, was ${w.flags & IFF_UP ? 'up' : 'down'}`);
  }
  return out;
}

/** An address by family, prefix, link and bytes. */
function addrKey(m: Buffer): string {
  const a = addrOf(m);
  const attrs = nlAttrs(nlBody(m), 8);
  return `${a.family}/${a.prefixlen}/${a.ifindex}/${hex(attrs.get(2) ?? attrs.get(1))}`;
}

/** A route by family, destination, table, type, and its destination, gateway, link, metric. */
function routeKey(m: Buffer): string {
  const b = nlBody(m);
  const a = nlAttrs(b, 12);
  return [b.readUInt8(0), b.readUInt8(1), b.readUInt8(3), b.readUInt8(7), ...[1, 5, 4, 6].map((t) => hex(a.get(t)))].join('/');
}

function sysctlDifferences(want: string[], have: string[], where: string): string[] {
  const got = new Map(have.map((e) => [e.slice(0, e.indexOf('=')), e.slice(e.indexOf('=') + 1)]));
  return want.flatMap((e) => {
    const name = e.slice(0, e.indexOf('='));
    const v = e.slice(e.indexOf('=') + 1);
    return got.get(name) === v ? [] : [`${where}sysctl ${name} is ${got.get(name) ?? 'missing'}, was ${v}`];
  });
}

/** Run inside the restored namespace (withNetns). */
export function netnsDifferences(s: NetnsState): string[] {
  const rtnl = new Rtnl();
  try {
    const links = readLinks(rtnl);
    const out = linkDifferences(s.links, links);
    const addrs = new Set(readAddrs(rtnl).map(addrKey));
    for (const m of s.addrs) if (!addrs.has(addrKey(m))) out.push(`address ${describeAddr(m)} is missing`);
    const routes = new Set([...readRoutes(rtnl, AF.INET), ...readRoutes(rtnl, AF.INET6)].map(routeKey));
    for (const m of sentRoutes([...s.routes, ...s.routes6])) if (!routes.has(routeKey(m))) out.push(`a route (${routeKey(m)}) is missing`);
    out.push(...sysctlDifferences(s.sysctls, readNetnsSysctls(), ''));
    for (const l of s.links) out.push(...sysctlDifferences(l.sysctls, readLinkSysctls(l.name), `link ${l.name} `));
    return out;
  } finally {
    rtnl.close();
  }
}
