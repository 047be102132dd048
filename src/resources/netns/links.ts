// The links of a network namespace: loopback and veth, their state (up/down, MTU, MAC address),
// read from an RTM_GETLINK dump and made again with RTM_NEWLINK. A veth pair is whole inside
// (both ends here: made once, with both names and ifindexes) or has its peer in cryo's own
// namespace (the host end, named at restore by --external veth[INSIDE]:OUTSIDE or else by the
// name it had, made in the host through IFLA_NET_NS_FD). Any other kind, a link enslaved to a
// master, or a veth whose peer is in a third namespace is refused, named, before anything is
// touched: check and dump ask linkProblems.
import { Rtnl, RTM, NLM_F, nlAttr, nlNest, nlAttrs, nlString, nlBody, E } from '../../sys/index.js';
import { UserError } from '../../util/errors.js';

export interface NetLink {
  ifindex: number;
  name: string;
  /** 'loopback', 'veth', or the kind the kernel names (refused). */
  kind: string;
  flags: number;
  mtu: number;
  address?: Buffer;
  /** IFLA_LINK: a veth's peer ifindex (in the peer's namespace). */
  peerIfindex?: number;
  /** IFLA_LINK_NETNSID: set when the peer is in another namespace. */
  peerNsid?: number;
  master?: number;
  /** A veth whose peer is in cryo's namespace: the peer's name there. */
  peerName?: string;
  /** "ipv4/NAME=VALUE" / "ipv6/NAME=VALUE" (sysctls.ts). */
  sysctls: string[];
}

const IFLA = { ADDRESS: 1, IFNAME: 3, MTU: 4, LINK: 5, MASTER: 10, LINKINFO: 18, NET_NS_FD: 28, LINK_NETNSID: 37 } as const;
const INFO = { KIND: 1, DATA: 2 } as const;
const VETH_INFO_PEER = 1;
const NETNSA = { NSID: 1, FD: 3 } as const;
const ARPHRD_LOOPBACK = 772;
export const IFF_UP = 1;
const IFINFOMSG = 16;

/** struct ifinfomsg: family, type, index, flags, change. */
function ifinfomsg(index = 0, flags = 0, change = 0): Buffer {
  const b = Buffer.alloc(IFINFOMSG);
  b.writeInt32LE(index, 4);
  b.writeUInt32LE(flags >>> 0, 8);
  b.writeUInt32LE(change >>> 0, 12);
  return b;
}

export function parseLink(msg: Buffer): NetLink {
  const body = nlBody(msg);
  const a = nlAttrs(body, IFINFOMSG);
  const info = a.get(IFLA.LINKINFO);
  const kindName = info ? nlString(nlAttrs(info).get(INFO.KIND)) : undefined;
  const l: NetLink = {
    ifindex: body.readInt32LE(4),
    name: nlString(a.get(IFLA.IFNAME)) ?? '',
    kind: body.readUInt16LE(2) === ARPHRD_LOOPBACK ? 'loopback' : (kindName ?? 'unknown'),
    flags: body.readUInt32LE(8),
    mtu: a.get(IFLA.MTU)?.readUInt32LE(0) ?? 0,
    sysctls: [],
  };
  const addr = a.get(IFLA.ADDRESS);
  if (addr?.length) l.address = Buffer.from(addr);
  if (a.has(IFLA.LINK)) l.peerIfindex = a.get(IFLA.LINK)!.readUInt32LE(0);
  if (a.has(IFLA.LINK_NETNSID)) l.peerNsid = a.get(IFLA.LINK_NETNSID)!.readInt32LE(0);
  if (a.has(IFLA.MASTER)) l.master = a.get(IFLA.MASTER)!.readUInt32LE(0);
  return l;
}

export const readLinks = (rtnl: Rtnl): NetLink[] => rtnl.dump(RTM.GETLINK, ifinfomsg()).map(parseLink);

/**
 * The host-side names of the veths of the namespace held by `nsFd` whose peer is in cryo's own
 * namespace: inside ifindex -> outside name. `host` is an rtnetlink socket of cryo's namespace.
 */
export function hostPeers(host: Rtnl, nsFd: number): Map<number, string> {
  const reply = host.query(RTM.GETNSID, Buffer.concat([Buffer.alloc(4), nlAttr(NETNSA.FD, nsFd)]), 'the namespace id of a network namespace');
  const nsid = nlAttrs(nlBody(reply), 4).get(NETNSA.NSID)?.readInt32LE(0) ?? -1;
  const out = new Map<number, string>();
  if (nsid < 0) return out;
  for (const l of readLinks(host)) if (l.kind === 'veth' && l.peerNsid === nsid && l.peerIfindex) out.set(l.peerIfindex, l.name);
  return out;
}

/** Why each link cannot be checkpointed (empty when all can). */
export function linkProblems(links: NetLink[]): string[] {
  const out: string[] = [];
  for (const l of links) {
    if (l.kind !== 'loopback' && l.kind !== 'veth') out.push(`link ${l.name} is a ${l.kind} — only loopback and veth links are supported`);
    else if (l.master) out.push(`link ${l.name} is enslaved to link ${l.master} (a bridge or bond) — not supported`);
    else if (l.kind === 'veth' && l.peerNsid !== undefined && l.peerName === undefined) out.push(`veth ${l.name}'s peer is in a network namespace that is neither the tree's nor cryo's — not supported`);
    else if (l.kind === 'veth' && l.peerNsid === undefined && !links.some((p) => p.ifindex === l.peerIfindex && p.kind === 'veth')) out.push(`veth ${l.name} has no peer — not supported`);
  }
  return out;
}

function linkAttrs(l: { name: string; mtu: number; address?: Buffer | undefined }): Buffer[] {
  return [nlAttr(IFLA.IFNAME, l.name), nlAttr(IFLA.MTU, l.mtu), ...(l.address ? [nlAttr(IFLA.ADDRESS, l.address)] : [])];
}

/**
 * Makes the links again (down; linksUp brings them up once they have their addresses), each
 * with its old ifindex. `outside`: the host-side name of each external veth; `hostFd`: cryo's
 * namespace. The host-side links made go into `made`, for removal after a failure.
 */
export function createLinks(rtnl: Rtnl, links: NetLink[], outside: (l: NetLink) => string, hostFd: number, made: string[]): void {
  const done = new Set<number>();
  for (const l of links) {
    if (done.has(l.ifindex)) continue;
    done.add(l.ifindex);
    if (l.kind === 'loopback') {
      if (l.mtu) rtnl.request(RTM.NEWLINK, 0, Buffer.concat([ifinfomsg(l.ifindex), nlAttr(IFLA.MTU, l.mtu)]), `mtu ${l.mtu} of ${l.name}`);
      continue;
    }
    let peer: Buffer;
    if (l.peerNsid === undefined) {
      const p = links.find((x) => x.ifindex === l.peerIfindex)!;
      done.add(p.ifindex);
      peer = Buffer.concat([ifinfomsg(p.ifindex), ...linkAttrs(p)]);
    } else {
      const name = outside(l);
      peer = Buffer.concat([ifinfomsg(), nlAttr(IFLA.IFNAME, name), nlAttr(IFLA.NET_NS_FD, hostFd)]);
      made.push(name);
    }
    const info = nlNest(IFLA.LINKINFO, [nlAttr(INFO.KIND, 'veth'), nlNest(INFO.DATA, [nlAttr(VETH_INFO_PEER, peer)])]);
    const e = rtnl.tryRequest(RTM.NEWLINK, NLM_F.CREATE | NLM_F.EXCL, Buffer.concat([ifinfomsg(l.ifindex), ...linkAttrs(l), info]));
    if (e) {
      if (l.peerNsid !== undefined) made.pop();
      const why = e === E.EEXIST && l.peerNsid !== undefined ? ` (is there a link named ${outside(l)} outside already?)` : '';
      throw new UserError(`cannot make veth ${l.name} again: ${errnoText(e)}${why}`);
    }
  }
}

const errnoText = (e: number) => Object.entries(E).find(([, v]) => v === e)?.[0] ?? `errno ${e}`;

/** The links that were up, up again. */
export function linksUp(rtnl: Rtnl, links: NetLink[]): void {
  for (const l of links) if (l.flags & IFF_UP) rtnl.request(RTM.NEWLINK, 0, ifinfomsg(l.ifindex, IFF_UP, IFF_UP), `${l.name} up`);
}

/** Removes links of cryo's namespace by name (the host ends made by a failed restore). */
export function removeLinks(host: Rtnl, names: string[]): void {
  for (const n of names) host.tryRequest(RTM.DELLINK, 0, Buffer.concat([ifinfomsg(), nlAttr(IFLA.IFNAME, n)]));
}
