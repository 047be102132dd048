// The network sysctls cryo keeps for a namespace and for each of its links, as "PATH=VALUE"
// (PATH under /proc/sys/net; a link's as "ipv4/NAME" for net.ipv4.conf.LINK.NAME). /proc/sys/net
// answers for the network namespace of the thread that opens it: both sides run in withNetns.
// Only values unlike the new namespace's are written; the namespace-wide ones first (ip_forward
// and conf/all set every link's), then each link's once it exists.
import { readFileSync, writeFileSync } from 'node:fs';
import { UserError } from '../../util/errors.js';

export const NETNS_SYSCTLS = [
  'ipv4/ip_forward', 'ipv4/conf/all/forwarding', 'ipv4/conf/default/forwarding', 'ipv4/conf/all/rp_filter',
  'ipv4/conf/default/rp_filter', 'ipv4/ip_local_port_range', 'ipv4/ping_group_range', 'ipv4/ip_unprivileged_port_start',
  'ipv6/conf/all/disable_ipv6', 'ipv6/conf/default/disable_ipv6', 'ipv6/conf/all/forwarding', 'ipv6/conf/default/forwarding',
  'core/somaxconn',
];
export const LINK_SYSCTLS = ['ipv4/forwarding', 'ipv4/rp_filter', 'ipv4/proxy_arp', 'ipv6/disable_ipv6', 'ipv6/forwarding', 'ipv6/accept_ra'];

const linkPath = (link: string, name: string) => name.replace(/^(ipv[46])\//, `$1/conf/${link}/`);

function read(path: string): string | undefined {
  try {
    return readFileSync(`/proc/sys/net/${path}`, 'utf8').replace(/\n$/, '');
  } catch {
    return undefined;
  }
}

const collect = (names: string[], path: (n: string) => string) =>
  names.flatMap((n) => {
    const v = read(path(n));
    return v === undefined ? [] : [`${n}=${v}`];
  });

export const readNetnsSysctls = (): string[] => collect(NETNS_SYSCTLS, (n) => n);
export const readLinkSysctls = (link: string): string[] => collect(LINK_SYSCTLS, (n) => linkPath(link, n));

function apply(entries: string[], path: (n: string) => string, allowed: string[]): void {
  for (const e of entries) {
    const i = e.indexOf('=');
    const name = e.slice(0, i);
    if (!allowed.includes(name)) throw new UserError(`network sysctl ${name} in the images is not one cryo restores`);
    const want = e.slice(i + 1);
    const p = path(name);
    if (read(p) === want) continue;
    try {
      writeFileSync(`/proc/sys/net/${p}`, want);
    } catch (err) {
      throw new UserError(`cannot set net.${p.replace(/\//g, '.')} to ${want}: ${(err as Error).message}`);
    }
  }
}

export const writeNetnsSysctls = (entries: string[]): void => apply(entries, (n) => n, NETNS_SYSCTLS);
export const writeLinkSysctls = (link: string, entries: string[]): void => apply(entries, (n) => linkPath(link, n), LINK_SYSCTLS);
