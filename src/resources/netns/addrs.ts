// Addresses (IPv4 and IPv6) of a network namespace, kept as the RTM_NEWADDR messages of an
// RTM_GETADDR dump (what `ip addr save` writes, CRIU's ifaddr-N.img) and sent back as requests.
// IPv6 addresses are added with IFA_F_NODAD before the links come up, so that they are not
// tentative when the tree's sockets bind to them (bind refuses a tentative address); once the
// links are up the flag is taken off again (a replace with the saved flags does not start DAD).
import { Rtnl, RTM, NLM_F, nlAttrs, nlBody, E, AF, SysError } from '../../sys/index.js';

const IFADDRMSG = 8;
const IFA_FLAGS = 8;
const IFA_F_NODAD = 0x02;

function ifaddrmsg(family = 0): Buffer {
  const b = Buffer.alloc(IFADDRMSG);
  b.writeUInt8(family, 0);
  return b;
}

export const readAddrs = (rtnl: Rtnl): Buffer[] => rtnl.dump(RTM.GETADDR, ifaddrmsg());

/** family, prefix length, interface index of a saved address. */
export function addrOf(msg: Buffer): { family: number; prefixlen: number; ifindex: number } {
  const b = nlBody(msg);
  return { family: b.readUInt8(0), prefixlen: b.readUInt8(1), ifindex: b.readUInt32LE(4) };
}

/** The request body of a saved address, with `extra` flags in ifa_flags and IFA_FLAGS. */
function requestBody(msg: Buffer, extra: number): Buffer {
  const body = Buffer.from(nlBody(msg));
  body.writeUInt8(body.readUInt8(2) | (extra & 0xff), 2);
  for (let off = IFADDRMSG; off + 4 <= body.length; ) {
    const len = body.readUInt16LE(off);
    if (len < 4) break;
    if ((body.readUInt16LE(off + 2) & 0x3fff) === IFA_FLAGS && len >= 8) body.writeUInt32LE((body.readUInt32LE(off + 4) | extra) >>> 0, off + 4);
    off += (len + 3) & ~3;
  }
  return body;
}

const savedFlags = (msg: Buffer): number => nlAttrs(nlBody(msg), IFADDRMSG).get(IFA_FLAGS)?.readUInt32LE(0) ?? nlBody(msg).readUInt8(2);

/**
 * ::1 on the loopback: the kernel gives it to lo as lo comes up, without the prefix route an
 * added address gets (which would be one route more than the dump saw).
 */
function madeByKernel(m: Buffer, loopback: number): boolean {
  const { family, prefixlen, ifindex } = addrOf(m);
  if (family !== AF.INET6 || prefixlen !== 128 || ifindex !== loopback) return false;
  const a = nlAttrs(nlBody(m), IFADDRMSG);
  const raw = a.get(IFA_LOCAL) ?? a.get(IFA_ADDRESS);
  return !!raw && raw.equals(Buffer.from('00000000000000000000000000000001', 'hex'));
}

/** Adds the saved addresses (the links still down); one the kernel made already is kept. */
export function addAddrs(rtnl: Rtnl, msgs: Buffer[], loopback: number): void {
  for (const m of msgs) {
    if (madeByKernel(m, loopback)) continue;
    const v6 = addrOf(m).family === AF.INET6;
    const e = rtnl.tryRequest(RTM.NEWADDR, NLM_F.CREATE | NLM_F.EXCL, requestBody(m, v6 ? IFA_F_NODAD : 0));
    if (e && e !== E.EEXIST) throw new SysError('rtnetlink', e, `address ${describeAddr(m)}`);
  }
}

/** Once the links are up: IPv6 addresses that had no IFA_F_NODAD get their own flags back. */
export function settleAddrs(rtnl: Rtnl, msgs: Buffer[], loopback: number): void {
  for (const m of msgs) {
    if (addrOf(m).family !== AF.INET6 || savedFlags(m) & IFA_F_NODAD || madeByKernel(m, loopback)) continue;
    const body = requestBody(m, 0);
    body.writeUInt8(body.readUInt8(2) & ~IFA_F_NODAD, 2);
    rtnl.request(RTM.NEWADDR, NLM_F.REPLACE, body, `flags of address ${describeAddr(m)}`);
  }
}

const IFA_ADDRESS = 1;
const IFA_LOCAL = 2;
export function describeAddr(msg: Buffer): string {
  const { family, prefixlen, ifindex } = addrOf(msg);
  const a = nlAttrs(nlBody(msg), IFADDRMSG);
  const raw = a.get(IFA_LOCAL) ?? a.get(IFA_ADDRESS);
  const text = !raw ? '?' : family === AF.INET ? [...raw].join('.') : (raw.toString('hex').match(/.{4}/g) ?? []).join(':');
  return `${text}/${prefixlen} on link ${ifindex}`;
}
