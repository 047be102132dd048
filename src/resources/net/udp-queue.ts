// The datagrams waiting in a UDP socket. Dumped without taking them off the queue (MSG_PEEK with
// SO_PEEK_OFF walks the queue), each with its sender. Restored by sending each one again to the
// new socket as its sender sent it: a raw IP packet (IP_HDRINCL) with the sender's address and
// port as source, over the local route, so recvfrom() returns what it would have returned and a
// connected socket (which only accepts its peer's datagrams) takes it. Needs CAP_NET_RAW.
import type { MessageInitShape } from '@bufbuild/protobuf';
import type { cryo_datagram_entrySchema } from '../../image/gen/sk-inet_pb.js';
import {
  AF, SOCK, IPPROTO, socket, send, sys, peekQueue, getsockname, decodeInetAddr, encodeInetAddr, type InetAddr,
} from '../../sys/index.js';
import { sleepMs } from '../../util/sleep.js';
import { addrToWords, wordsToBytes } from './addr-words.js';

export type DatagramRecord = MessageInitShape<typeof cryo_datagram_entrySchema> & { data: Uint8Array; srcAddr: number[]; srcPort: number };

/** Largest UDP payload over IPv4 or IPv6 without jumbograms. */
const MAX_DATAGRAM = 65535;


/** Every datagram in `fd`'s receive queue (our copy of the socket), oldest first, left in place. */
export function dumpUdpQueue(fd: number): DatagramRecord[] {
  return peekQueue(fd, MAX_DATAGRAM, { senders: true }).map((m) => {
    for (const f of m.fds) sys('close', [f]);
    const from = decodeInetAddr(m.from!);
    return { data: m.data, srcAddr: addrToWords(from.addr), srcPort: from.port };
  });
}

/** An IPv4-mapped IPv6 address (::ffff:a.b.c.d): its IPv4 part, else null. */
function mappedV4(a: Buffer): Buffer | null {
  if (a.length !== 16 || !a.subarray(0, 10).every((b) => b === 0) || a[10] !== 0xff || a[11] !== 0xff) return null;
  return Buffer.from(a.subarray(12));
}

/** Where a datagram for a socket bound to `bound` is sent: its address, or loopback if it is the wildcard. */
function destination(bound: InetAddr, v4: boolean): Buffer {
  if (v4) {
    const a = bound.family === AF.INET ? bound.addr : mappedV4(bound.addr);
    return a && a.some((b) => b !== 0) ? a : Buffer.from([127, 0, 0, 1]);
  }
  return bound.addr.some((b) => b !== 0) ? bound.addr : Buffer.from([...Array(15).fill(0), 1]);
}

/** The 16-bit ones' complement sum of `parts` (RFC 768 / RFC 8200 checksums). */
function checksum(...parts: Buffer[]): number {
  const all = Buffer.concat(parts);
  let sum = 0;
  for (let i = 0; i < all.length; i += 2) sum += (all[i]! << 8) | (all[i + 1] ?? 0);
  while (sum > 0xffff) sum = (sum & 0xffff) + (sum >>> 16);
  return ~sum & 0xffff || 0xffff;
}

function udpHeader(srcPort: number, dstPort: number, length: number, sum: number): Buffer {
  const h = Buffer.alloc(8);
  h.writeUInt16BE(srcPort, 0);
  h.writeUInt16BE(dstPort, 2);
  h.writeUInt16BE(length, 4);
  h.writeUInt16BE(sum, 6);
  return h;
}

/** An IPv4 packet carrying the datagram (the kernel fills in the header checksum and id). */
function packetV4(src: Buffer, dst: Buffer, srcPort: number, dstPort: number, data: Buffer): Buffer {
  const ip = Buffer.alloc(20);
  ip[0] = 0x45;
  ip.writeUInt16BE(20 + 8 + data.length, 2);
  ip.writeUInt16BE(0x4000, 6); // don't fragment
  ip[8] = 64;
  ip[9] = IPPROTO.UDP;
  src.copy(ip, 12);
  dst.copy(ip, 16);
  return Buffer.concat([ip, udpHeader(srcPort, dstPort, 8 + data.length, 0), data]); // checksum 0: none (IPv4 allows it)
}

/** An IPv6 packet carrying the datagram (its checksum is mandatory over IPv6). */
function packetV6(src: Buffer, dst: Buffer, srcPort: number, dstPort: number, data: Buffer): Buffer {
  const len = 8 + data.length;
  const pseudo = Buffer.alloc(40);
  src.copy(pseudo, 0);
  dst.copy(pseudo, 16);
  pseudo.writeUInt32BE(len, 32);
  pseudo[39] = IPPROTO.UDP;
  const sum = checksum(pseudo, udpHeader(srcPort, dstPort, len, 0), data);
  const ip = Buffer.alloc(40);
  ip.writeUInt32BE(6 << 28, 0);
  ip.writeUInt16BE(len, 4);
  ip[6] = IPPROTO.UDP;
  ip[7] = 64;
  src.copy(ip, 8);
  dst.copy(ip, 24);
  return Buffer.concat([ip, udpHeader(srcPort, dstPort, len, sum), data]);
}

/**
 * Puts `queue` into the receive queue of the new socket `fd` (bound, and connected if it was),
 * in order, each as sent by its sender; throws unless they are all there afterwards.
 */
export function refillUdpQueue(fd: number, queue: DatagramRecord[], what: string): void {
  if (!queue.length) return;
  const bound = decodeInetAddr(getsockname(fd));
  const raws = new Map<number, number>();
  const raw = (family: number): number => {
    let r = raws.get(family);
    if (r === undefined) raws.set(family, (r = socket(family, SOCK.RAW, IPPROTO.RAW)));
    return r;
  };
  try {
    for (const d of queue) {
      const src = wordsToBytes(d.srcAddr);
      const v4src = src.length === 4 ? src : mappedV4(src);
      const data = Buffer.from(d.data);
      if (v4src) {
        const dst = destination(bound, true);
        send(raw(AF.INET), packetV4(v4src, dst, d.srcPort, bound.port, data), encodeInetAddr({ family: AF.INET, port: 0, addr: dst }));
      } else {
        const dst = destination(bound, false);
        send(raw(AF.INET6), packetV6(src, dst, d.srcPort, bound.port, data), encodeInetAddr({ family: AF.INET6, port: 0, addr: dst }));
      }
    }
  } finally {
    for (const r of raws.values()) sys('close', [r]);
  }
  // Loopback delivery runs in softirq context, usually before send returns: wait a little.
  const deadline = Date.now() + 1000;
  let got = 0;
  while ((got = peekQueue(fd, MAX_DATAGRAM).length) < queue.length && Date.now() < deadline) {
    sleepMs(5);
  }
  if (got < queue.length) throw new Error(`${what}: ${queue.length} queued datagrams to put back, ${got} arrived`);
}
