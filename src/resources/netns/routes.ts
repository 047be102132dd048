// Routes of a network namespace's main table (IPv4 and IPv6), kept as the RTM_NEWROUTE messages
// of an RTM_GETROUTE dump (what `ip route save` writes, CRIU's route-N.img / route6-N.img) and
// sent back once the links are up. Routes the kernel makes by itself (protocol kernel: an
// address's prefix route, IPv6 link-local) come back with their addresses and are not sent.
import { Rtnl, RTM, NLM_F, nlAttrs, nlBody, E, AF, SysError } from '../../sys/index.js';
import { skip } from '../../util/skip.js';

const RTMSG = 12;
const RTA_TABLE = 15;
const RT_TABLE_MAIN = 254;
const RTPROT_KERNEL = 2;
/** rtm_flags a request may carry (RTNH_F_PERVASIVE, RTNH_F_ONLINK): the kernel refuses its own (linkdown, dead, offload). */
const REQUEST_FLAGS = 0x2 | 0x4;

function rtmsg(family: number): Buffer {
  const b = Buffer.alloc(RTMSG);
  b.writeUInt8(family, 0);
  return b;
}

const tableOf = (msg: Buffer): number => nlAttrs(nlBody(msg), RTMSG).get(RTA_TABLE)?.readUInt32LE(0) ?? nlBody(msg).readUInt8(4);

/** The main table's routes of one family. */
export const readRoutes = (rtnl: Rtnl, family: typeof AF.INET | typeof AF.INET6): Buffer[] =>
  rtnl.dump(RTM.GETROUTE, rtmsg(family)).filter((m) => tableOf(m) === RT_TABLE_MAIN);

/** The saved routes the restore sends (those the kernel makes by itself are not). */
export const sentRoutes = (msgs: Buffer[]): Buffer[] => msgs.filter((m) => nlBody(m).readUInt8(5) !== RTPROT_KERNEL);

export function addRoutes(rtnl: Rtnl, msgs: Buffer[]): void {
  for (const m of sentRoutes(msgs)) {
    if (skip('netns-route')) continue;
    const body = Buffer.from(nlBody(m));
    body.writeUInt32LE(body.readUInt32LE(8) & REQUEST_FLAGS, 8);
    const e = rtnl.tryRequest(RTM.NEWROUTE, NLM_F.CREATE | NLM_F.EXCL, body);
    if (e && e !== E.EEXIST) throw new SysError('rtnetlink', e, `a route (family ${body.readUInt8(0)}, /${body.readUInt8(1)}) of the main table`);
  }
}
