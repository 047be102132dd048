// The GNU build-id of an ELF file (its NT_GNU_BUILD_ID note), which CRIU records for executables
// and mapped libraries so a restore can tell the file was replaced.
import { openSync, readSync, closeSync } from 'node:fs';

const PT_NOTE = 4;
const NT_GNU_BUILD_ID = 3;

function read(fd: number, pos: number, len: number): Buffer {
  const b = Buffer.alloc(len);
  const n = readSync(fd, b, 0, len, pos);
  return b.subarray(0, n);
}

/** The build-id as CRIU stores it (little-endian u32 words), or undefined for non-ELF files. */
export function buildIdWords(path: string): number[] | undefined {
  let fd: number;
  try {
    fd = openSync(path, 'r');
  } catch {
    return undefined;
  }
  try {
    const eh = read(fd, 0, 64);
    if (eh.length < 64 || eh.readUInt32BE(0) !== 0x7f454c46 || eh[4] !== 2) return undefined; // ELF64 only
    const phoff = Number(eh.readBigUInt64LE(32));
    const phentsize = eh.readUInt16LE(54);
    const phnum = eh.readUInt16LE(56);
    const ph = read(fd, phoff, phentsize * phnum);
    for (let i = 0; i < phnum; i++) {
      const p = ph.subarray(i * phentsize);
      if (p.length < 56 || p.readUInt32LE(0) !== PT_NOTE) continue;
      const notes = read(fd, Number(p.readBigUInt64LE(8)), Math.min(Number(p.readBigUInt64LE(32)), 4096));
      for (let off = 0; off + 12 <= notes.length; ) {
        const namesz = notes.readUInt32LE(off);
        const descsz = notes.readUInt32LE(off + 4);
        const type = notes.readUInt32LE(off + 8);
        const nameOff = off + 12;
        const descOff = nameOff + ((namesz + 3) & ~3);
        if (type === NT_GNU_BUILD_ID && notes.toString('latin1', nameOff, nameOff + 3) === 'GNU') {
          const desc = notes.subarray(descOff, descOff + descsz);
          const words: number[] = [];
          for (let w = 0; w + 4 <= desc.length; w += 4) words.push(desc.readUInt32LE(w));
          return words;
        }
        off = descOff + ((descsz + 3) & ~3);
      }
    }
    return undefined;
  } finally {
    closeSync(fd);
  }
}
