// /proc/PID/net/tcp and tcp6: the TCP sockets of PID's network namespace, one a line. Needed for
// what no socket call tells: the peer of a connect still in progress (getpeername says ENOTCONN
// until the handshake is done).
export interface NetTcpEntry {
  /** Address bytes in network order (4 or 16) and port, each end. */
  local: { addr: Buffer; port: number };
  remote: { addr: Buffer; port: number };
  state: number;
  inode: number;
}

/**
 * An address as the kernel prints it: each 32-bit word of the network-order address as a host
 * (little-endian) integer in hex, words in order.
 */
function addrBytes(hex: string): Buffer {
  const out = Buffer.alloc(hex.length / 2);
  for (let w = 0; w < hex.length / 8; w++) out.writeUInt32LE(parseInt(hex.slice(w * 8, w * 8 + 8), 16), w * 4);
  return out;
}

function end(text: string): { addr: Buffer; port: number } {
  const [a, p] = text.split(':');
  if (!a || !p || (a.length !== 8 && a.length !== 32)) throw new Error(`net/tcp: bad address "${text}"`);
  return { addr: addrBytes(a), port: parseInt(p, 16) };
}

export function parseNetTcp(text: string): NetTcpEntry[] {
  const out: NetTcpEntry[] = [];
  for (const line of text.split('\n').slice(1)) {
    const w = line.trim().split(/\s+/);
    if (w.length < 10) continue;
    out.push({ local: end(w[1]!), remote: end(w[2]!), state: parseInt(w[3]!, 16), inode: Number(w[9]) });
  }
  return out;
}
