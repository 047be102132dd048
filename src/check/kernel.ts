// The kernel features cryo needs, each tried for real where it can be (without CAP_SYS_RESOURCE
// or anything else a probe would have to change): `cryo check` without -t.
import { existsSync, writeFileSync, openSync, readSync, closeSync } from 'node:fs';
import { release } from 'node:os';
import { PM_SOFT_DIRTY } from '../proc/index.js';
import { sysTry, kcmp, KCMP, pidfdOpen, pidfdGetfd, closeFd, PR, xsaveLayout, alignedBuffer, addressOf } from '../sys/index.js';
import type { KernelReport, Probe } from './report.js';

function kernelAtLeast(major: number, minor: number): boolean {
  const [a = 0, b = 0] = release().split('.').map((x) => parseInt(x, 10));
  return a > major || (a === major && b >= minor);
}

function probe(name: string, required: boolean, detail: string, test: () => boolean): Probe {
  let ok = false;
  try {
    ok = test();
  } catch {
    ok = false;
  }
  return { name, required, ok, detail };
}

/** Whether the kernel marks a page we dirty after clearing the bits (pagemap bit 55). */
function softDirtyWorks(): boolean {
  writeFileSync('/proc/self/clear_refs', '4');
  const page = alignedBuffer(4096);
  page[0] = 1;
  const word = Buffer.alloc(8);
  const fd = openSync('/proc/self/pagemap', 'r');
  try {
    readSync(fd, word, 0, 8, Number(addressOf(page) / 4096n) * 8);
  } finally {
    closeSync(fd);
  }
  return (word.readBigUInt64LE(0) & PM_SOFT_DIRTY) !== 0n;
}

export function kernelProbes(): Probe[] {
  return [
    probe('root', true, 'ptrace, clone3 set_tid and PR_SET_MM need root', () => process.getuid?.() === 0),
    probe('ptrace seize/interrupt', true, 'freezing tasks (Linux 3.4)', () => kernelAtLeast(3, 4)),
    probe('clone3 with set_tid', true, 'restoring PIDs (Linux 5.5)', () => kernelAtLeast(5, 5)),
    probe('pidfd_open + pidfd_getfd', true, 'moving open files into restored tasks (Linux 5.6)', () => {
      const fd = pidfdOpen(process.pid);
      const got = pidfdGetfd(fd, 0);
      closeFd(got);
      closeFd(fd);
      return true;
    }),
    probe('kcmp', true, 'finding shared files and memory (CONFIG_KCMP)', () => kcmp(process.pid, process.pid, KCMP.VM) === 0),
    probe('prctl PR_GET_TID_ADDRESS', true, 'CONFIG_CHECKPOINT_RESTORE (also PR_SET_MM_MAP, ARCH_MAP_VDSO_64)', () => {
      const b = Buffer.alloc(8);
      return sysTry('prctl', [PR.GET_TID_ADDRESS, b, 0, 0, 0]).ret === 0;
    }),
    probe('/proc/PID/map_files', true, 'mapped files and shared memory', () => existsSync('/proc/self/map_files')),
    probe('PTRACE_GET_RSEQ_CONFIGURATION', true, 'rseq areas of glibc 2.35+ programs (Linux 5.13)', () => kernelAtLeast(5, 13)),
    probe('XSAVE layout (CPUID 0xD)', true, 'FPU/AVX state', () => xsaveLayout().size >= 0),
    probe('soft-dirty page tracking', false, 'incremental and iterative (pre-copy) dumps; without it every dump is full', softDirtyWorks),
  ];
}

export function checkKernel(): KernelReport {
  const probes = kernelProbes();
  return { kernel: release(), verdict: probes.some((p) => p.required && !p.ok) ? 'refused' : 'ok', probes };
}
