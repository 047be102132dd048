// What the images say a restored task must show in /proc, as a Snapshot with the same keys the
// observer reads (resources/observe). Only what cryo restores today and what the image actually
// records (presence from the schema: images written by CRIU may lack fields).
import { task_core_entrySchema, thread_core_entrySchema, type core_entry } from '../image/gen/core_pb.js';
import { mm_entrySchema } from '../image/gen/mm_pb.js';
import { creds_entrySchema } from '../image/gen/creds_pb.js';
import { MAP } from '../sys/index.js';
import { sigactionSignals } from '../resources/task/signals.js';
import { affinityCpus, affinityText } from '../resources/task/placement.js';
import { speculationStatus } from '../resources/task/speculation.js';
import { mceKillText } from '../resources/task/mce-kill.js';
import { VMA, MADV_BY_VMFLAG } from '../resources/mm/vma-kind.js';
import {
  signalSet, UNBLOCKABLE, limitKey, limitValue, mappingKey, permsOf, threadPrefix, capHex,
} from '../resources/observe/names.js';
import type { Snapshot } from '../resources/observe/snapshot.js';
import { expectFds, has } from './verify-expect-fds.js';
import type { CheckpointImage, TaskImage } from './images.js';
import { credsOutside, type UsernsState } from '../resources/ns/user.js';

/** Signals named by queued siginfos (si_signo is their first int). */
function pendingSet(infos: Uint8Array[]): { set: string[] } {
  let mask = 0n;
  for (const i of infos) mask |= 1n << BigInt(Buffer.from(i).readInt32LE(0) - 1);
  return signalSet(mask);
}

export function expectedSnapshot(ckpt: CheckpointImage, img: TaskImage, parent: TaskImage | undefined): Snapshot {
  const s: Snapshot = new Map();
  const { pid } = img;
  const tc = img.core.tc!;
  s.set('threads', { set: [pid, ...img.threads.map((t) => t.tid)].map(String) });
  // The images keep a task's ids as it sees them in the tree's user namespace; /proc shows cryo's.
  const user = ckpt.namespaces.user && img.ids.userNsId === ckpt.tasks[0]!.ids.userNsId ? ckpt.namespaces.user : undefined;
  expectThread(s, pid, pid, img.core, tc.blkSigset, user);
  for (const th of img.threads) {
    const tcore = th.core.threadCore;
    expectThread(s, pid, th.tid, th.core, has(tcore, thread_core_entrySchema, 'blkSigset') ? tcore!.blkSigset : undefined, user);
  }

  if (tc.sigactions.length) {
    let ign = 0n;
    let cgt = 0n;
    sigactionSignals().forEach((sig, i) => {
      const h = tc.sigactions[i]?.sigaction ?? 0n;
      if (h === 1n) ign |= 1n << BigInt(sig - 1);
      else if (h > 1n) cgt |= 1n << BigInt(sig - 1);
    });
    s.set('SigIgn', signalSet(ign));
    s.set('SigCgt', signalSet(cgt));
  }
  if (has(tc, task_core_entrySchema, 'signalsS')) s.set('ShdPnd', pendingSet(tc.signalsS!.signals.map((q) => q.siginfo)));
  // A root whose session is outside the image joins the restorer's (restoreSessionAndGroup warns).
  const { sid, pgid } = img.pstree;
  if (parent || sid === pid) {
    s.set('sid', String(sid));
    s.set('pgid', String(pgid));
  }
  s.set('NSpid', img.pstree.cryoNsPid.join(' '));
  s.set('personality', tc.personality.toString(16).padStart(8, '0'));
  // Process-wide in /proc/PID/status: what the leader thread has.
  const lead = img.core.threadCore;
  if (has(lead, thread_core_entrySchema, 'seccompMode')) s.set('Seccomp', String(lead!.seccompMode));
  if (lead?.creds && has(lead.creds, creds_entrySchema, 'noNewPrivs')) s.set('NoNewPrivs', String(lead.creds.noNewPrivs));
  if (has(tc, task_core_entrySchema, 'oomScoreAdj')) s.set('oom_score_adj', String(tc.oomScoreAdj));
  if (has(img.mm, mm_entrySchema, 'cryoKsmMergeAny')) s.set('ksm_merge_any', img.mm.cryoKsmMergeAny ? 'yes' : 'no');
  if (has(tc, task_core_entrySchema, 'rlimits')) tc.rlimits!.rlimits.forEach((l, res) => s.set(limitKey(res), limitValue(l.cur, l.max)));
  s.set('umask', img.fs.umask.toString(8).padStart(4, '0'));
  const cwd = ckpt.files.get(img.fs.cwdId);
  const root = ckpt.files.get(img.fs.rootId);
  if (cwd) s.set('cwd', cwd.name);
  if (root) s.set('root', root.name);
  // A task sharing its parent's memory has no VMAs of its own in the images.
  if (!(parent && parent.ids.vmId === img.ids.vmId) && img.memory.vmas.length) expectMappings(s, ckpt, img);
  expectFds(s, ckpt, img);
  return s;
}

function expectThread(s: Snapshot, pid: number, tid: number, core: core_entry, blocked: bigint | undefined, user: UsernsState | undefined): void {
  const p = threadPrefix(pid, tid);
  const tcore = core.threadCore;
  if (blocked !== undefined) s.set(`${p}SigBlk`, signalSet(blocked & ~UNBLOCKABLE));
  if (has(tcore, thread_core_entrySchema, 'signalsP')) s.set(`${p}SigPnd`, pendingSet(tcore!.signalsP!.signals.map((q) => q.siginfo)));
  // The leader's name may be only in the task part; a thread without one keeps the leader's.
  const comm = (has(tcore, thread_core_entrySchema, 'comm') && tcore!.comm) || (tid === pid ? core.tc?.comm : undefined);
  if (comm) s.set(`${p}comm`, comm.slice(0, 15));
  if (has(tcore, thread_core_entrySchema, 'schedNice')) s.set(`${p}nice`, String(tcore!.schedNice));
  if (has(tcore, thread_core_entrySchema, 'schedPolicy')) s.set(`${p}policy`, String(tcore!.schedPolicy));
  s.set(`${p}mce`, mceKillText(has(tcore, thread_core_entrySchema, 'cryoMceKill') ? tcore!.cryoMceKill : undefined));
  if (has(tcore, thread_core_entrySchema, 'schedPrio')) s.set(`${p}rt_priority`, String(tcore!.schedPrio));
  if (has(tcore, thread_core_entrySchema, 'cryoTimerSlackNs')) s.set(`${p}timerslack`, String(tcore!.cryoTimerSlackNs));
  if (tcore?.cryoCpuAffinity.length) s.set(`${p}affinity`, affinityText(affinityCpus(tcore.cryoCpuAffinity)));
  if (has(tcore, thread_core_entrySchema, 'cryoIoprio')) s.set(`${p}ioprio`, String(tcore!.cryoIoprio));
  const spec = tcore?.cryoSpeculation ?? [];
  for (let i = 0; i + 1 < spec.length; i += 2) {
    const line = speculationStatus(spec[i]!, spec[i + 1]!);
    if (line) s.set(`${p}${line[0]}`, line[1]);
  }
  if (!has(tcore, thread_core_entrySchema, 'creds')) return;
  const c = user ? credsOutside(tcore!.creds!, user, `pid ${tid}`) : tcore!.creds!;
  s.set(`${p}Uid`, `${c.uid} ${c.euid} ${c.suid} ${c.fsuid}`);
  s.set(`${p}Gid`, `${c.gid} ${c.egid} ${c.sgid} ${c.fsgid}`);
  s.set(`${p}Groups`, { set: c.groups.map(String) });
  const cap = (w: number[]) => capHex(BigInt(w[0] ?? 0) | (BigInt(w[1] ?? 0) << 32n));
  for (const [key, field] of [['CapInh', 'capInh'], ['CapPrm', 'capPrm'], ['CapEff', 'capEff'], ['CapBnd', 'capBnd'], ['CapAmb', 'capAmb']] as const) {
    // capAmb is repeated: an image without it (older CRIU) says nothing about ambient caps.
    if (field !== 'capAmb' || c.capAmb.length || has(c, creds_entrySchema, field)) s.set(`${p}${key}`, cap(c[field]));
  }
}

/** The VmFlags a restore sets: madvise advice, stack growth (MAP_GROWSDOWN), MAP_NORESERVE, seals, locks. */
const VMFLAGS_RESTORED = [...Object.keys(MADV_BY_VMFLAG), 'gd', 'nr', 'sl', 'lo', 'lf', 'gu'];

function expectMappings(s: Snapshot, ckpt: CheckpointImage, img: TaskImage): void {
  const ranges: string[] = [];
  // The kernel's own mappings are where the restore put them (vdso-image.ts), not as recorded.
  const plan = img.memory.vdso;
  for (const m of plan?.mapped ?? []) {
    const key = mappingKey(m.start, m.end);
    ranges.push(key.slice('mapping '.length));
    s.set(key, permsOf((m.prot & 1) !== 0, false, (m.prot & 4) !== 0, false));
  }
  for (const v of img.mm.vmas) {
    if (plan && v.status & (VMA.AREA_VDSO | VMA.AREA_VVAR)) continue;
    const key = mappingKey(v.start, v.end);
    ranges.push(key.slice('mapping '.length));
    s.set(key, permsOf((v.prot & 1) !== 0, (v.prot & 2) !== 0, (v.prot & 4) !== 0, (v.flags & MAP.SHARED) !== 0));
    if (v.status & (VMA.FILE_PRIVATE | VMA.FILE_SHARED) && !(v.status & VMA.AREA_MEMFD)) {
      // memfds are mapped from the restorer's fd (their name is the kernel's, compared as kind).
      const f = ckpt.files.get(Number(v.shmid));
      if (f) s.set(`${key} file`, `${f.name} @${v.pgoff.toString(16)}`);
    }
    const want: string[] = [];
    for (const [code, advice] of Object.entries(MADV_BY_VMFLAG)) if (v.madv & (1n << BigInt(advice))) want.push(code);
    if (v.flags & MAP.GROWSDOWN) want.push('gd');
    if (v.flags & MAP.NORESERVE) want.push('nr');
    if (v.cryoSealed) want.push('sl');
    if (v.cryoMaybeGuard) want.push('gu');
    if (v.flags & MAP.LOCKED) want.push('lo', ...(v.cryoLockOnfault ? ['lf'] : []));
    s.set(`${key} VmFlags`, { set: want.sort(), only: VMFLAGS_RESTORED });
  }
  s.set('mappings', { set: ranges });
}

