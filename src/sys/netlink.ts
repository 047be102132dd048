// rtnetlink at the kernel boundary: a NETLINK_ROUTE socket, requests acknowledged or failed with
// the kernel's errno, dumps returned as the raw messages the kernel sent (images keep them as
// they are: CRIU's ifaddr/route images are such dumps), and the attribute (TLV) builder and parser.
// A netlink socket serves the network namespace it was created in, for its whole life: open it
// inside the namespace (netns.ts withNetns) and use it from anywhere.
import { sys, sysTry } from './libc.js';
import { SysError } from './errno.js';
import { AF, SOCK } from './socket.js';

const NETLINK_ROUTE = 0;
export const NETLINK_NETFILTER = 12;
export const RTM = {
  NEWLINK: 16, DELLINK: 17, GETLINK: 18, SETLINK: 19, NEWADDR: 20, DELADDR: 21, GETADDR: 22,
  NEWROUTE: 24, DELROUTE: 25, GETROUTE: 26, NEWNSID: 88, GETNSID: 90,
} as const;
export const NLM_F = { REQUEST: 1, MULTI: 2, ACK: 4, DUMP: 0x300, REPLACE: 0x100, EXCL: 0x200, CREATE: 0x400 } as const;
const NLMSG_ERROR = 2;
const NLMSG_DONE = 3;
const NLA_TYPE_MASK = 0x3fff;
/** Size of struct nlmsghdr; a message's body starts here. */
export const NLMSG_HDRLEN = 16;

const align4 = (n: number) => (n + 3) & ~3;

/** One attribute: u16 length, u16 type, value, padded to 4. */
export function nlAttr(type: number, value: Buffer | string | number): Buffer {
  const v = typeof value === 'string' ? Buffer.from(`${value}\0`) : typeof value === 'number' ? u32(value) : value;
  const out = Buffer.alloc(align4(4 + v.length));
  out.writeUInt16LE(4 + v.length, 0);
  out.writeUInt16LE(type, 2);
  v.copy(out, 4);
  return out;
}

export const nlNest = (type: number, parts: Buffer[]): Buffer => nlAttr(type, Buffer.concat(parts));

function u32(n: number): Buffer {
  const b = Buffer.alloc(4);
  b.writeUInt32LE(n >>> 0);
  return b;
}

/** Attributes of `buf` (from `offset`) by type; the last of a repeated type wins. */
export function nlAttrs(buf: Buffer, offset = 0): Map<number, Buffer> {
  const out = new Map<number, Buffer>();
  for (let off = offset; off + 4 <= buf.length; ) {
    const len = buf.readUInt16LE(off);
    if (len < 4 || off + len > buf.length) break;
    out.set(buf.readUInt16LE(off + 2) & NLA_TYPE_MASK, buf.subarray(off + 4, off + len));
    off += align4(len);
  }
  return out;
}

/** A NUL-terminated string attribute's text. */
export const nlString = (v: Buffer | undefined): string | undefined => (v ? v.toString('utf8').replace(/\0.*$/s, '') : undefined);

/** The message type and body of a raw message (nlmsghdr at 0). */
export const nlType = (msg: Buffer): number => msg.readUInt16LE(4);
export const nlBody = (msg: Buffer): Buffer => msg.subarray(NLMSG_HDRLEN, msg.readUInt32LE(0));

export class Rtnl {
  private readonly fd: number;
  private seq = 1;

  /** A NETLINK_ROUTE (or `protocol`) socket in the calling thread's network namespace. */
  constructor(protocol = NETLINK_ROUTE) {
    this.fd = sys('socket', [AF.NETLINK, SOCK.RAW | SOCK.CLOEXEC, protocol], 'netlink socket');
  }

  close(): void {
    sys('close', [this.fd]);
  }

  private send(type: number, flags: number, body: Buffer): number {
    const seq = this.seq++;
    const msg = Buffer.alloc(NLMSG_HDRLEN + align4(body.length));
    msg.writeUInt32LE(NLMSG_HDRLEN + body.length, 0);
    msg.writeUInt16LE(type, 4);
    msg.writeUInt16LE(NLM_F.REQUEST | flags, 6);
    msg.writeUInt32LE(seq, 8);
    body.copy(msg, NLMSG_HDRLEN);
    sys('sendto', [this.fd, msg, msg.length, 0, 0, 0], 'rtnetlink request');
    return seq;
  }

  /** Every message a dump request answers with, each a copy with its nlmsghdr. */
  dump(type: number, body: Buffer): Buffer[] {
    const seq = this.send(type, NLM_F.DUMP, body);
    const out: Buffer[] = [];
    const buf = Buffer.alloc(256 * 1024);
    for (;;) {
      const n = sys('recvfrom', [this.fd, buf, buf.length, 0, 0, 0], 'rtnetlink dump');
      for (let off = 0; off + NLMSG_HDRLEN <= n; ) {
        const len = buf.readUInt32LE(off);
        if (len < NLMSG_HDRLEN) throw new Error(`rtnetlink: bad message length ${len}`);
        const t = buf.readUInt16LE(off + 4);
        if (buf.readUInt32LE(off + 8) === seq) {
          if (t === NLMSG_DONE) return out;
          if (t === NLMSG_ERROR) throw new SysError('rtnetlink dump', -buf.readInt32LE(off + NLMSG_HDRLEN));
          out.push(Buffer.from(buf.subarray(off, off + len)));
        }
        off += align4(len);
      }
    }
  }

  /** Sends a request and waits for its acknowledgement; the errno (0 on success). */
  tryRequest(type: number, flags: number, body: Buffer): number {
    const seq = this.send(type, NLM_F.ACK | flags, body);
    const buf = Buffer.alloc(64 * 1024);
    for (;;) {
      const r = sysTry('recvfrom', [this.fd, buf, buf.length, 0, 0, 0]);
      if (r.ret < 0) return r.errno;
      for (let off = 0; off + NLMSG_HDRLEN <= r.ret; ) {
        const len = buf.readUInt32LE(off);
        if (len < NLMSG_HDRLEN) return -1;
        if (buf.readUInt32LE(off + 8) === seq && buf.readUInt16LE(off + 4) === NLMSG_ERROR) return -buf.readInt32LE(off + NLMSG_HDRLEN);
        off += align4(len);
      }
    }
  }

  request(type: number, flags: number, body: Buffer, what: string): void {
    const e = this.tryRequest(type, flags, body);
    if (e) throw new SysError('rtnetlink', e, what);
  }

  /** A request answered by one message (RTM_GETNSID): that message. */
  query(type: number, body: Buffer, what: string): Buffer {
    const seq = this.send(type, 0, body);
    const buf = Buffer.alloc(64 * 1024);
    for (;;) {
      const n = sys('recvfrom', [this.fd, buf, buf.length, 0, 0, 0], what);
      for (let off = 0; off + NLMSG_HDRLEN <= n; ) {
        const len = buf.readUInt32LE(off);
        if (len < NLMSG_HDRLEN) throw new Error(`rtnetlink: bad message length ${len}`);
        if (buf.readUInt32LE(off + 8) === seq) {
          if (buf.readUInt16LE(off + 4) === NLMSG_ERROR) throw new SysError('rtnetlink', -buf.readInt32LE(off + NLMSG_HDRLEN), what);
          return Buffer.from(buf.subarray(off, off + len));
        }
        off += align4(len);
      }
    }
  }
}
