// `cryo check`: what cryo needs from the kernel, or, with -t PID, everything in the tree and
// whether cryo can checkpoint it. Touches nothing: the target is not stopped or traced.
import { readFileSync, readlinkSync, statSync, existsSync, writeFileSync, openSync, readSync, closeSync } from 'node:fs';
import { release } from 'node:os';
import { collectTree } from '../dump/collect.js';
import { namespacesOf } from '../dump/namespaces.js';
import { classifyVma } from '../resources/mm/vma-kind.js';
import { memoryBlockers } from '../resources/mm/dump.js';
import { fdBlocker, describeLink } from '../resources/files/kind.js';
import { listFds } from '../resources/files/fds.js';
import { pipeInode } from '../resources/files/pipe.js';
import { inspectSocket, socketInode } from '../resources/files/socket.js';
import type { ScanOptions } from '../resources/files/scan.js';
import { parseMaps, PM_SOFT_DIRTY } from '../proc/index.js';
import { sysTry, kcmp, KCMP, pidfdOpen, pidfdGetfd, closeFd, PR, xsaveLayout, alignedBuffer, addressOf } from '../sys/index.js';
import { hex } from '../util/errors.js';
import { blockerText } from '../util/blocker.js';

interface Probe {
  name: string;
  required: boolean;
  ok: boolean;
  detail: string;
}

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

/** The kernel features cryo relies on, each tried for real where it can be. */
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
    probe('soft-dirty page tracking', false, 'incremental and iterative (pre-copy) dumps; without it every dump is full', () => {
      // Clear the bits, dirty a page of ours, and see whether pagemap marks it (bit 55).
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
    }),
  ];
}

function printKernel(): number {
  const probes = kernelProbes();
  for (const p of probes) {
    const mark = p.ok ? 'ok     ' : p.required ? 'MISSING' : 'absent ';
    process.stdout.write(`${mark} ${p.name} — ${p.detail}\n`);
  }
  const missing = probes.filter((p) => p.required && !p.ok);
  process.stdout.write(missing.length ? `cryo cannot work here: ${missing.length} required feature(s) missing\n` : `kernel ${release()}: everything cryo needs is there\n`);
  return missing.length ? 1 : 0;
}

/** Lists the tree with every fd, mapping and namespace; returns the number of blockers. */
function printTree(pid: number, opts: ScanOptions): number {
  const { tasks, blockers, scan } = collectTree(pid, opts);
  const out = (s: string) => process.stdout.write(s + '\n');
  let outside = 0;
  for (const t of tasks) {
    let comm = '?';
    try {
      comm = readFileSync(`/proc/${t.pid}/comm`, 'utf8').trim();
    } catch {
      /* gone */
    }
    const what = t.zombie ? 'zombie' : t.stopped ? 'stopped' : `${t.threads.length} thread${t.threads.length > 1 ? 's' : ''}`;
    out(`pid ${t.pid} (${comm}), parent ${t.ppid || '-'}, group ${t.pgid}, session ${t.sid}: ${what}`);
    if (t.zombie) continue;
    for (const fd of listFds(t.pid)) {
      let link = '?';
      let mode: number | null = null;
      try {
        link = readlinkSync(`/proc/${t.pid}/fd/${fd}`);
        mode = statSync(`/proc/${t.pid}/fd/${fd}`).mode;
      } catch {
        /* closed meanwhile */
      }
      let what = describeLink(link);
      let b: string | null;
      try {
        const ino = socketInode(link);
        if (ino !== null) {
          const s = inspectSocket(t.pid, fd, ino, scan);
          what = s.text;
          b = s.blocker && `pid ${t.pid} fd ${fd}: ${s.blocker}`;
        } else {
          b = fdBlocker(t.pid, fd, link, mode, scan);
        }
      } catch (e) {
        b = `cannot inspect: ${(e as Error).message}`;
      }
      let reason = b ? b.replace(/^pid \d+ fd \d+: /, '') : 'ok';
      const peer = scan.pipePeers.get(pipeInode(link) ?? -1);
      if (!b && peer) {
        reason = `ok, but a ${peer}: restore needs --inherit-fd fd[N]:${link}`;
        outside++;
      }
      if (reason.startsWith(what)) reason = reason.slice(what.length).replace(/^(: | — )/, '');
      out(`  fd ${String(fd).padEnd(4)} ${what} — ${reason}`);
    }
    for (const m of parseMaps(readFileSync(`/proc/${t.pid}/maps`, 'utf8'))) {
      const c = classifyVma(t.pid, m);
      const b = memoryBlockers(t.pid, [m], scan.ghostLimit)[0];
      const name = m.path ? `${m.path}${m.deleted ? ' (deleted)' : ''}` : '(anonymous)';
      const ghost = m.deleted && 'kind' in c && c.kind.startsWith('file-') && !m.path.startsWith('/memfd:');
      const ok = 'kind' in c ? `ok (${c.kind}${ghost ? ', contents saved as a ghost file' : ''})` : '';
      out(`  map  ${hex(m.start)}-${hex(m.end)} ${name} — ${b ? b.replace(/^pid \d+ mapping \S+: /, '') : ok}`);
    }
    for (const n of namespacesOf(t.pid)) out(`  ns   ${n.kind.padEnd(6)} ${n.link} — ${n.same ? "ok (cryo's own)" : 'its own: not supported yet'}`);
  }
  if (blockers.length) {
    out(`cannot checkpoint pid ${pid}: ${blockers.length} blocker(s):`);
    for (const b of blockers) out(`  ${blockerText(b)}`);
  } else {
    out(`pid ${pid} can be checkpointed (${tasks.length} task${tasks.length > 1 ? 's' : ''})`);
    if (outside) out(`  note: ${outside} fd(s) are pipes to processes outside the tree; a restore needs --inherit-fd for each`);
  }
  return blockers.length;
}

export function runCheck(pid: number | undefined, opts: ScanOptions = {}): number {
  if (pid === undefined) return printKernel();
  return printTree(pid, opts) ? 1 : 0;
}
