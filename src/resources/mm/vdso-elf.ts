// The exported functions of a vdso image (an ELF64 shared object): names, offsets from the start
// of the mapping, sizes. Read from the section headers (the vdso maps its whole file, section
// headers included) and the first PT_LOAD's p_vaddr (symbol values are link-time addresses).

export interface VdsoSymbol {
  name: string;
  /** Offset of the entry point from the start of the vdso mapping. */
  off: number;
  size: number;
}

const SHT_DYNSYM = 11;
const STT_FUNC = 2;
const STB_GLOBAL = 1;
const STB_WEAK = 2;
const PT_LOAD = 1;

/** The function symbols a vdso exports (global or weak, defined), by name. */
export function vdsoSymbols(elf: Buffer): Map<string, VdsoSymbol> {
  if (elf.length < 64 || elf.readUInt32BE(0) !== 0x7f454c46 || elf[4] !== 2 || elf[5] !== 1) throw new Error('not an ELF64 little-endian image');
  const phoff = Number(elf.readBigUInt64LE(0x20));
  const shoff = Number(elf.readBigUInt64LE(0x28));
  const phentsize = elf.readUInt16LE(0x36);
  const phnum = elf.readUInt16LE(0x38);
  const shentsize = elf.readUInt16LE(0x3a);
  const shnum = elf.readUInt16LE(0x3c);
  let base: bigint | null = null;
  for (let i = 0; i < phnum; i++) {
    const p = phoff + i * phentsize;
    if (p + 56 > elf.length) break;
    if (elf.readUInt32LE(p) === PT_LOAD) {
      base = elf.readBigUInt64LE(p + 16) - elf.readBigUInt64LE(p + 8);
      break;
    }
  }
  if (base === null) throw new Error('no PT_LOAD program header');
  if (!shoff || shoff + shnum * shentsize > elf.length) throw new Error('no section headers inside the mapping');
  const sec = (i: number) => {
    const s = shoff + i * shentsize;
    return { type: elf.readUInt32LE(s + 4), offset: Number(elf.readBigUInt64LE(s + 24)), size: Number(elf.readBigUInt64LE(s + 32)), link: elf.readUInt32LE(s + 40), entsize: Number(elf.readBigUInt64LE(s + 56)) };
  };
  const out = new Map<string, VdsoSymbol>();
  for (let i = 0; i < shnum; i++) {
    const dynsym = sec(i);
    if (dynsym.type !== SHT_DYNSYM) continue;
    const strtab = sec(dynsym.link);
    const entsize = dynsym.entsize || 24;
    for (let o = dynsym.offset; o + entsize <= dynsym.offset + dynsym.size && o + 24 <= elf.length; o += entsize) {
      const info = elf[o + 4]!;
      const shndx = elf.readUInt16LE(o + 6);
      if ((info & 0xf) !== STT_FUNC || shndx === 0 || ![STB_GLOBAL, STB_WEAK].includes(info >> 4)) continue;
      const nameAt = strtab.offset + elf.readUInt32LE(o);
      const end = elf.indexOf(0, nameAt);
      if (nameAt >= elf.length || end < 0) throw new Error('symbol name outside the string table');
      const name = elf.toString('latin1', nameAt, end);
      out.set(name, { name, off: Number(elf.readBigUInt64LE(o + 8) - base), size: Number(elf.readBigUInt64LE(o + 16)) });
    }
  }
  if (!out.size) throw new Error('no exported functions (.dynsym)');
  return out;
}

/** `movabs $target, %rax; jmp *%rax`: 12 bytes; rax is no argument register in the x86-64 ABI. */
export function jumpTo(target: bigint): Buffer {
  const b = Buffer.alloc(12);
  b[0] = 0x48;
  b[1] = 0xb8;
  b.writeBigUInt64LE(target, 2);
  b[10] = 0xff;
  b[11] = 0xe0;
  return b;
}
