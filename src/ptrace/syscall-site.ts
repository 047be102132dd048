// Finding a `syscall` instruction (0f 05) in the task's vdso to point injected calls at.
import { readFileSync } from 'node:fs';
import { vmRead } from '../sys/index.js';
import { parseMaps } from '../proc/index.js';

export function findSyscallInVdso(pid: number): bigint {
  const vdso = parseMaps(readFileSync(`/proc/${pid}/maps`, 'utf8')).find((m) => m.path === '[vdso]');
  if (!vdso) throw new Error(`pid ${pid}: no [vdso] mapping to run injected syscalls from`);
  return findSyscallIn(pid, vdso.start, Number(vdso.end - vdso.start));
}

export function findSyscallIn(pid: number, start: bigint, len: number): bigint {
  const buf = Buffer.alloc(len);
  const n = vmRead(pid, buf, [{ addr: start, len }]);
  for (let i = 0; i + 1 < n; i++) {
    if (buf[i] === 0x0f && buf[i + 1] === 0x05) return start + BigInt(i);
  }
  throw new Error(`pid ${pid}: no syscall instruction at 0x${start.toString(16)}`);
}
