// The peer's FIN, replayed into a recreated connection. A connection the peer has closed
// (CLOSE_WAIT) remembers that FIN only as a flag and one sequence number; repair mode has no
// option to set them, so the FIN is sent to the new socket as the peer sent it: one raw TCP
// segment (FIN|ACK at the FIN's sequence number) from the peer's address. It carries CRYO_MARK
// so that the network lock lets it through.
import {
  AF, SOL, SO, IPPROTO, sys, socket, bind, setsockoptInt, closeFd, encodeInetAddr, type InetAddr,
} from '../../sys/index.js';
import { CRYO_MARK } from './netlock.js';

const SOCK_RAW = 3;
const IP_HDRINCL = 3;
const IPV6_FREEBIND = 78;
const TCP_FLAG = { FIN: 0x01, ACK: 0x10 } as const;

/** The Internet checksum (RFC 1071) of the concatenated parts. */
function checksum(parts: Buffer[]): number {
  const all = Buffer.concat(parts);
  let sum = 0;
  for (let i = 0; i + 1 < all.length; i += 2) sum += all.readUInt16BE(i);
  if (all.length & 1) sum += all[all.length - 1]! << 8;
  while (sum > 0xffff) sum = (sum & 0xffff) + (sum >>> 16);
  return ~sum & 0xffff;
}

/** A 20-byte TCP header from `from` to `to` with the checksum over the family's pseudo header. */
function finSegment(from: InetAddr, to: InetAddr, seq: number, ack: number, window: number): Buffer {
  const tcp = Buffer.alloc(20);
  tcp.writeUInt16BE(from.port, 0);
  tcp.writeUInt16BE(to.port, 2);
  tcp.writeUInt32BE(seq >>> 0, 4);
  tcp.writeUInt32BE(ack >>> 0, 8);
  tcp.writeUInt8(5 << 4, 12);
  tcp.writeUInt8(TCP_FLAG.FIN | TCP_FLAG.ACK, 13);
  tcp.writeUInt16BE(Math.min(window, 0xffff), 14);
  const pseudo = Buffer.alloc(from.family === AF.INET ? 12 : 40);
  if (from.family === AF.INET) {
    from.addr.copy(pseudo, 0);
    to.addr.copy(pseudo, 4);
    pseudo.writeUInt8(IPPROTO.TCP, 9);
    pseudo.writeUInt16BE(tcp.length, 10);
  } else {
    from.addr.copy(pseudo, 0);
    to.addr.copy(pseudo, 16);
    pseudo.writeUInt32BE(tcp.length, 32);
    pseudo.writeUInt8(IPPROTO.TCP, 39);
  }
  tcp.writeUInt16BE(checksum([pseudo, tcp]), 16);
  return tcp;
}

/**
 * Sends `local` the FIN its peer `remote` sent at sequence `seq`, acknowledging `ack` (what the
 * socket has had acknowledged already) and advertising `window` (unscaled).
 */
export function replayPeerFin(remote: InetAddr, local: InetAddr, seq: number, ack: number, window: number): void {
  const tcp = finSegment(remote, local, seq, ack, window);
  const v4 = remote.family === AF.INET;
  const fd = socket(remote.family, SOCK_RAW, IPPROTO.TCP);
  try {
    setsockoptInt(fd, SOL.SOCKET, SO.MARK, CRYO_MARK, 'SO_MARK on the raw socket');
    let packet = tcp;
    if (v4) {
      // Our own IPv4 header: the source must be the peer's address, wherever it is.
      setsockoptInt(fd, SOL.IP, IP_HDRINCL, 1, 'IP_HDRINCL');
      const ip = Buffer.alloc(20);
      ip.writeUInt8(0x45, 0);
      ip.writeUInt16BE(20 + tcp.length, 2);
      ip.writeUInt16BE(0x4000, 6); // DF; the kernel fills in the id and the checksum
      ip.writeUInt8(64, 8);
      ip.writeUInt8(IPPROTO.TCP, 9);
      remote.addr.copy(ip, 12);
      local.addr.copy(ip, 16);
      packet = Buffer.concat([ip, tcp]);
    } else {
      // No header of our own for IPv6: bind to the peer's address (freebind: it may not be ours).
      setsockoptInt(fd, SOL.IPV6, IPV6_FREEBIND, 1, 'IPV6_FREEBIND');
      bind(fd, encodeInetAddr({ ...remote, port: 0 }), 'binding the raw socket to the peer address');
    }
    const to = encodeInetAddr({ ...local, port: 0 });
    sys('sendto', [fd, packet, packet.length, 0, to, to.length], 'sending the peer\'s FIN');
  } finally {
    closeFd(fd);
  }
}
