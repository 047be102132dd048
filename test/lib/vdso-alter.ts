// Simulating another kernel's vdso in a real image (for test/vdso-proxy.test.ts).
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { decodeImage, decodeImageAs, encodeImage } from '../../src/image/io.js';
import { mm_entrySchema } from '../../src/image/gen/mm_pb.js';
import { pagemapEntryPages } from '../../src/image/pagemap.js';
import type { pagemap_entry } from '../../src/image/gen/pagemap_pb.js';

const PAGE = 4096;
const VDSO = 1 << 3;
const VVAR = 1 << 12;

/**
 * Turns the saved vdso into "another kernel's" that the process's own pointers still fit (it
 * resolved the entry points before the dump, and glibc resolves more lazily from the vdso's
 * symbol table in memory): the entry points stay where they are, but all the code (.text) is
 * int3, so that any of it run traps, every exported function's symbol has another size, and the
 * [vvar] area below it is a page smaller. `rename` renames an export (one the running vdso lacks).
 */
export function otherKernel(dir: string, pid: number, rename?: [string, string]): void {
  const mmFile = path.join(dir, `mm-${pid}.img`);
  const pmFile = path.join(dir, `pagemap-${pid}.img`);
  const mm = decodeImageAs(fs.readFileSync(mmFile), mm_entrySchema)[0]!;
  const vdso = mm.vmas.find((v) => v.status & VDSO)!;
  const vvar = mm.vmas.filter((v) => v.status & VVAR).sort((a, b) => (a.start < b.start ? -1 : 1))[0]!;
  assert.ok(vvar && vvar.end - vvar.start > BigInt(PAGE), 'a vvar VMA of more than a page below the vdso');
  const pm = decodeImage(fs.readFileSync(pmFile)).messages;
  const head = pm[0] as unknown as { pagesId: number };
  const pagesFile = path.join(dir, `pages-${head.pagesId}.img`);
  let off = 0;
  const entry = (pm.slice(1) as pagemap_entry[]).find((e) => {
    if (e.vaddr === vdso.start) return true;
    off += Number(pagemapEntryPages(e)) * PAGE;
    return false;
  });
  assert.ok(entry, 'the dump saved the vdso pages');
  const len = Number(vdso.end - vdso.start);
  const fd = fs.openSync(pagesFile, 'r+');
  const elf = Buffer.alloc(len);
  fs.readSync(fd, elf, 0, len, off);
  const shoff = Number(elf.readBigUInt64LE(0x28));
  const shnum = elf.readUInt16LE(0x3c);
  const shstr = Number(elf.readBigUInt64LE(shoff + elf.readUInt16LE(0x3e) * 64 + 24));
  const sec = (i: number) => shoff + i * 64;
  const cstr = (o: number) => elf.toString('latin1', o, elf.indexOf(0, o));
  let resized = 0;
  for (let i = 0; i < shnum; i++) {
    const at = Number(elf.readBigUInt64LE(sec(i) + 24));
    const size = Number(elf.readBigUInt64LE(sec(i) + 32));
    if (cstr(shstr + elf.readUInt32LE(sec(i))) === '.text') elf.fill(0xcc, at, at + size);
    if (elf.readUInt32LE(sec(i) + 4) !== 11) continue; // SHT_DYNSYM
    const strtab = Number(elf.readBigUInt64LE(sec(elf.readUInt32LE(sec(i) + 40)) + 24));
    for (let o = at; o < at + size; o += 24) {
      if ((elf[o + 4]! & 0xf) !== 2 || elf.readUInt16LE(o + 6) === 0) continue; // defined STT_FUNC
      elf.writeBigUInt64LE(elf.readBigUInt64LE(o + 16) + 16n, o + 16);
      resized++;
      const nameAt = strtab + elf.readUInt32LE(o);
      if (rename && cstr(nameAt) === rename[0]) elf.write(rename[1], nameAt, 'latin1');
    }
  }
  assert.ok(resized >= 5, `only ${resized} vdso functions found`);
  fs.writeSync(fd, elf, 0, len, off);
  fs.closeSync(fd);
  vvar.start += BigInt(PAGE);
  fs.writeFileSync(mmFile, encodeImage('MM', [mm]), { mode: 0o600 });
  // The images are no longer the ones cryo wrote: no manifest (as for CRIU's images).
  fs.rmSync(path.join(dir, 'cryo-manifest.json'));
}
