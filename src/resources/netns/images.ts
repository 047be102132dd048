// A tree's own network namespace as CRIU's images, N being its net_ns_id: netdev-N.img (one
// net_device_entry per link; cryo_peer_name, cryo_sysctls), ifaddr-N.img, route-N.img and
// route6-N.img (raw rtnetlink dumps after iproute2's save magic, as `ip addr save` / `ip route
// save` write them and CRIU keeps them), netns-N.img (netns_entry, cryo_sysctls) and
// nftables-N.img (nft's JSON; CRIU keeps nft's text there, which cryo does not read).
import { create } from '@bufbuild/protobuf';
import type { ImageDirWriter, ImageDirReader } from '../../image/dir.js';
import { net_device_entrySchema, netns_entrySchema, nd_type, type net_device_entry, type netns_entry } from '../../image/gen/netdev_pb.js';
import { hasField } from '../../image/presence.js';
import { UserError } from '../../util/errors.js';
import type { NetnsState } from './model.js';
import type { NetLink } from './links.js';

const IFADDR_MAGIC = 0x47361222;
const ROUTE_MAGIC = 0x45311224;

function raw(magic: number, msgs: Buffer[]): Buffer {
  const head = Buffer.alloc(4);
  head.writeUInt32LE(magic);
  return Buffer.concat([head, ...msgs]);
}

function unraw(buf: Buffer, magic: number, name: string): Buffer[] {
  if (buf.length < 4 || buf.readUInt32LE(0) !== magic) throw new UserError(`${name}: not an iproute2 dump (magic)`);
  const out: Buffer[] = [];
  for (let off = 4; off < buf.length; ) {
    if (off + 16 > buf.length) throw new UserError(`${name}: truncated message at ${off}`);
    const len = buf.readUInt32LE(off);
    if (len < 16 || off + len > buf.length) throw new UserError(`${name}: bad message length ${len} at ${off}`);
    out.push(Buffer.from(buf.subarray(off, off + len)));
    off += (len + 3) & ~3;
  }
  return out;
}

export function writeNetnsImages(w: ImageDirWriter, id: number, s: NetnsState): void {
  w.writeImage(`netdev-${id}.img`, 'NETDEV', s.links.map((l) => create(net_device_entrySchema, {
    type: l.kind === 'loopback' ? nd_type.LOOPBACK : nd_type.VETH, ifindex: l.ifindex, mtu: l.mtu, flags: l.flags, name: l.name,
    ...(l.address ? { address: l.address } : {}),
    ...(l.peerIfindex !== undefined ? { peerIfindex: l.peerIfindex } : {}),
    ...(l.peerNsid !== undefined ? { peerNsid: l.peerNsid } : {}),
    ...(l.peerName !== undefined ? { cryoPeerName: l.peerName } : {}),
    cryoSysctls: l.sysctls,
  })));
  w.writeRaw(`ifaddr-${id}.img`, raw(IFADDR_MAGIC, s.addrs));
  w.writeRaw(`route-${id}.img`, raw(ROUTE_MAGIC, s.routes));
  w.writeRaw(`route6-${id}.img`, raw(ROUTE_MAGIC, s.routes6));
  w.writeImage(`netns-${id}.img`, 'NETNS', [create(netns_entrySchema, { cryoSysctls: s.sysctls })]);
  if (s.nft) w.writeRaw(`nftables-${id}.img`, Buffer.from(s.nft));
}

function linkOf(e: net_device_entry, file: string): NetLink {
  if (e.type !== nd_type.LOOPBACK && e.type !== nd_type.VETH) throw new UserError(`${file}: link ${e.name} of type ${nd_type[e.type] ?? e.type} — only loopback and veth are supported`);
  const l: NetLink = { ifindex: e.ifindex, name: e.name, kind: e.type === nd_type.LOOPBACK ? 'loopback' : 'veth', flags: e.flags, mtu: e.mtu, sysctls: [...e.cryoSysctls] };
  if (hasField(net_device_entrySchema, e, 'address')) l.address = Buffer.from(e.address);
  if (hasField(net_device_entrySchema, e, 'peerIfindex')) l.peerIfindex = e.peerIfindex;
  if (hasField(net_device_entrySchema, e, 'peerNsid')) l.peerNsid = e.peerNsid;
  if (hasField(net_device_entrySchema, e, 'cryoPeerName')) l.peerName = e.cryoPeerName;
  if (hasField(net_device_entrySchema, e, 'master')) throw new UserError(`${file}: link ${e.name} has a master — not supported`);
  return l;
}

export function readNetnsImages(r: ImageDirReader, id: number): NetnsState {
  const devFile = `netdev-${id}.img`;
  const links = r.readAs(devFile, net_device_entrySchema).map((e) => linkOf(e, devFile));
  for (const l of links) {
    if (l.kind !== 'veth') continue;
    if (l.peerNsid === undefined && !links.some((p) => p.kind === 'veth' && p.ifindex === l.peerIfindex && p.peerIfindex === l.ifindex)) {
      throw new UserError(`${devFile}: veth ${l.name}'s peer (ifindex ${l.peerIfindex}) is not in the namespace`);
    }
  }
  const ns = r.readAs(`netns-${id}.img`, netns_entrySchema) as netns_entry[];
  if (ns.length !== 1) throw new UserError(`netns-${id}.img: ${ns.length} entries, wanted 1`);
  const rawOf = (name: string, magic: number) => (r.exists(name) ? unraw(r.readRaw(name), magic, name) : []);
  return {
    links,
    addrs: rawOf(`ifaddr-${id}.img`, IFADDR_MAGIC),
    routes: rawOf(`route-${id}.img`, ROUTE_MAGIC),
    routes6: rawOf(`route6-${id}.img`, ROUTE_MAGIC),
    sysctls: [...ns[0]!.cryoSysctls],
    nft: r.exists(`nftables-${id}.img`) ? r.readRaw(`nftables-${id}.img`).toString('utf8') : null,
  };
}
