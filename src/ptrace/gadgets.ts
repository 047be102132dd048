// Instruction sequences already mapped executable in a task, for the injections that run before
// cryo's scratch area exists (its mmap) or after it is gone (its munmap): `syscall; ret`, and a
// signal restorer `mov rax, 15; syscall` (glibc's __restore_rt; ld.so and libc both have them).
// With rsp at a signal frame whose first word is the restorer, the `ret` after the injected call
// leads into rt_sigreturn: the task returns to its own state even if cryo dies in between.
import { readFileSync } from 'node:fs';
import { vmRead } from '../sys/index.js';
import { parseMaps, type MapsEntry } from '../proc/index.js';

export interface Gadgets {
  /** Address of `0f 05 c3` (syscall; ret). */
  syscallRet: bigint;
  /** Address of `48 c7 c0 0f 00 00 00 0f 05` (mov rax, 15; syscall). */
  restorer: bigint;
  /**
   * glibc's munmap: mov eax, 11; syscall; cmp rax, -4095; jae error; ret. Returned into right
   * after an injected mmap(A, len), whose rdi and rsi still hold A and len, it undoes it.
   */
  munmapRet: bigint | null;
}

const SYSCALL_RET = Buffer.from([0x0f, 0x05, 0xc3]);
const RESTORER = Buffer.from([0x48, 0xc7, 0xc0, 0x0f, 0x00, 0x00, 0x00, 0x0f, 0x05]);
const MUNMAP_RET = Buffer.from('b80b0000000f05483d01f0ffff7301c3', 'hex');

/** Offsets found per file mapping (dev, inode, file offset): every task of a tree maps the same libraries. */
const found = new Map<string, { syscallRet: number; restorer: number; munmapRet: number }>();

function scan(pid: number, m: MapsEntry): { syscallRet: number; restorer: number; munmapRet: number } {
  const key = `${m.dev}:${m.inode}:${m.offset}:${m.end - m.start}`;
  const known = found.get(key);
  if (known) return known;
  const len = Number(m.end - m.start);
  const buf = Buffer.alloc(len);
  const n = vmRead(pid, buf, [{ addr: m.start, len }]);
  const text = buf.subarray(0, n);
  const r = { syscallRet: text.indexOf(SYSCALL_RET), restorer: text.indexOf(RESTORER), munmapRet: text.indexOf(MUNMAP_RET) };
  found.set(key, r);
  return r;
}

/** Both gadgets, checked in the task's own memory; null if its executable files lack one. */
export function findGadgets(pid: number, maps = parseMaps(readFileSync(`/proc/${pid}/maps`, 'utf8'))): Gadgets | null {
  // The dynamic loader first: small, and mapped into every dynamically linked program.
  const files = maps.filter((m) => m.exec && m.read && m.inode !== 0);
  files.sort((a, b) => Number(!a.path.includes('ld-linux')) - Number(!b.path.includes('ld-linux')));
  let syscallRet: bigint | null = null;
  let restorer: bigint | null = null;
  let munmapRet: bigint | null = null;
  for (const m of files) {
    const r = scan(pid, m);
    if (syscallRet === null && r.syscallRet >= 0 && holds(pid, m.start + BigInt(r.syscallRet), SYSCALL_RET)) syscallRet = m.start + BigInt(r.syscallRet);
    if (restorer === null && r.restorer >= 0 && holds(pid, m.start + BigInt(r.restorer), RESTORER)) restorer = m.start + BigInt(r.restorer);
    if (munmapRet === null && r.munmapRet >= 0 && holds(pid, m.start + BigInt(r.munmapRet), MUNMAP_RET)) munmapRet = m.start + BigInt(r.munmapRet);
    if (syscallRet !== null && restorer !== null && munmapRet !== null) break;
  }
  return syscallRet !== null && restorer !== null ? { syscallRet, restorer, munmapRet } : null;
}

/** The task's bytes at `addr` are `want` (its private copy of a library may differ from the file). */
function holds(pid: number, addr: bigint, want: Buffer): boolean {
  const b = Buffer.alloc(want.length);
  return vmRead(pid, b, [{ addr, len: want.length }]) === want.length && b.equals(want);
}
