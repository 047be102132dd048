// Addresses as CRIU's images hold them (inet_sk_entry src_addr/dst_addr, and cryo's datagram
// senders): the network-order bytes read as native 32-bit words.

/** The address bytes as words. */
export function addrToWords(addr: Buffer): number[] {
  return Array.from({ length: addr.length / 4 }, (_, i) => addr.readUInt32LE(i * 4));
}

/** The words back as address bytes, in a buffer of `size` bytes (by default just the words). */
export function wordsToBytes(words: readonly number[], size = words.length * 4): Buffer {
  const addr = Buffer.alloc(size);
  words.forEach((w, i) => addr.writeUInt32LE(w >>> 0, i * 4));
  return addr;
}
