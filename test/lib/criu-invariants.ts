// The invariants CRIU 4.2's restore checks on an image directory (docs/criu-invariants.md has
// the list with the CRIU check each one mirrors), as checks on `crit decode` output: crit is the
// oracle here, not cryo's own reader. Each check returns the problems it finds ([] when the
// images satisfy it).
import * as fs from 'node:fs';
import * as path from 'node:path';

type J = Record<string, any>; // eslint-disable-line @typescript-eslint/no-explicit-any

/** An image directory as crit decodes it, with the sizes of its raw files. */
export interface CritImages {
  dir: string;
  decoded: Map<string, unknown>;
}

const PAGE = 4096n;
const num = (v: unknown): bigint => (typeof v === 'string' ? BigInt(v) : BigInt((v as number | undefined) ?? 0));
const entries = (img: CritImages, name: string): J[] => ((img.decoded.get(name) as J | undefined)?.entries as J[] | undefined) ?? [];
const has = (img: CritImages, name: string) => img.decoded.has(name);
// CRIU's VMA status bits and pagemap flags (crit decode gives them as numbers).
const VMA_VDSO = 1 << 3, VMA_FILE = (1 << 6) | (1 << 7), VMA_NOT_PRIVATE = (1 << 7) | (1 << 8) | (1 << 10), VMA_VVAR = 1 << 12;
const PE_PARENT = 1;
const bits = (v: unknown) => Number(v ?? 0);
const NS = ['pid', 'net', 'ipc', 'uts', 'mnt'] as const;
const ALL_IDS = ['vm', 'files', 'fs', 'sighand', 'pid_ns', 'net_ns', 'ipc_ns', 'uts_ns', 'mnt_ns', 'user_ns', 'cgroup_ns', 'time_ns'];

function inventory(img: CritImages): J {
  return entries(img, 'inventory.img')[0] ?? {};
}
function tasks(img: CritImages): J[] {
  return entries(img, 'pstree.img');
}
function alive(img: CritImages): J[] {
  return tasks(img).filter((t) => entries(img, `core-${t.pid}.img`)[0]?.tc?.task_state !== 'TASK_DEAD' && entries(img, `core-${t.pid}.img`)[0]?.tc?.task_state !== 2);
}
function ids(img: CritImages, pid: number): J | undefined {
  return entries(img, `ids-${pid}.img`)[0];
}

export interface Invariant {
  id: string;
  /** What must hold, in one line. */
  what: string;
  check(img: CritImages): string[];
}

export const INVARIANTS: Invariant[] = [
  {
    id: 'inventory-format',
    what: 'inventory: img_version 2, fdinfo_per_id set, root_ids with every id',
    check(img) {
      const inv = inventory(img);
      const out: string[] = [];
      if (inv.img_version !== 2) out.push(`img_version ${inv.img_version}`);
      if (inv.fdinfo_per_id !== true) out.push('fdinfo_per_id not set (CRIU: too old image)');
      for (const k of ALL_IDS) if (!inv.root_ids?.[`${k}_id`]) out.push(`root_ids.${k}_id missing`);
      return out;
    },
  },
  {
    id: 'root-cgset',
    what: 'inventory root_cg_set is non-zero and a set of cgroup.img; every task core.tc.cg_set too',
    check(img) {
      const sets = new Set(entries(img, 'cgroup.img').flatMap((e) => (e.sets ?? []).map((s: J) => s.id)));
      const out: string[] = [];
      const root = inventory(img).root_cg_set;
      if (root === 0) out.push('root_cg_set is 0 (CRIU: corrupted root cgset)');
      if (root !== undefined && has(img, 'cgroup.img') && !sets.has(root)) out.push(`root_cg_set ${root} is not in cgroup.img`);
      for (const t of alive(img)) {
        const cg = entries(img, `core-${t.pid}.img`)[0]?.tc?.cg_set;
        if (cg && has(img, 'cgroup.img') && !sets.has(cg)) out.push(`pid ${t.pid}: cg_set ${cg} is not in cgroup.img`);
      }
      return out;
    },
  },
  {
    id: 'root-ids-differ',
    what: "the root task's vm, files, fs and sighand ids differ from root_ids' (the dumper's)",
    check(img) {
      const root = tasks(img)[0];
      const rid = root && ids(img, root.pid);
      const dumper = inventory(img).root_ids ?? {};
      if (!rid) return ['no ids for the root task'];
      return ['vm', 'files', 'fs', 'sighand'].filter((k) => rid[`${k}_id`] === dumper[`${k}_id`]).map((k) => `root task ${k}_id ${rid[`${k}_id`]} equals root_ids' (CRIU: image corruption on kIDs data)`);
    },
  },
  {
    id: 'task-ns-ids',
    what: 'every live task has ids-PID.img with pid, net, ipc, uts and mnt namespace ids',
    check(img) {
      const out: string[] = [];
      for (const t of alive(img)) {
        const e = ids(img, t.pid);
        if (!e) out.push(`pid ${t.pid}: no ids-${t.pid}.img`);
        else for (const n of NS) if (!e[`${n}_ns_id`]) out.push(`pid ${t.pid}: ${n}_ns_id missing`);
      }
      return out;
    },
  },
  {
    id: 'same-namespaces',
    what: "the root's namespace ids equal root_ids' and every task's equal its parent's (no namespace images are written)",
    check(img) {
      const out: string[] = [];
      const byPid = new Map(tasks(img).map((t) => [t.pid as number, t]));
      for (const t of alive(img)) {
        const mine = ids(img, t.pid);
        const theirs = t.ppid === 0 ? inventory(img).root_ids : ids(img, byPid.get(t.ppid)?.pid);
        if (!mine || !theirs) continue;
        for (const n of [...NS, 'user']) if (mine[`${n}_ns_id`] !== theirs[`${n}_ns_id`]) out.push(`pid ${t.pid}: ${n}_ns_id ${mine[`${n}_ns_id`]} differs from its ${t.ppid ? 'parent' : "dumper"}'s ${theirs[`${n}_ns_id`]}`);
      }
      return out;
    },
  },
  {
    id: 'pstree-shape',
    what: 'pstree: one root (ppid 0) listed first, each parent before its children, threads[0] is the pid, no TID twice',
    check(img) {
      const out: string[] = [];
      const seen = new Set<number>();
      const tids = new Set<number>();
      tasks(img).forEach((t, i) => {
        if ((t.ppid === 0) !== (i === 0)) out.push(`pid ${t.pid}: ppid ${t.ppid} at position ${i}`);
        if (t.ppid !== 0 && !seen.has(t.ppid)) out.push(`pid ${t.pid}: parent ${t.ppid} not listed before it`);
        seen.add(t.pid);
        if ((t.threads ?? [])[0] !== t.pid) out.push(`pid ${t.pid}: threads[0] is ${(t.threads ?? [])[0]}`);
        for (const tid of t.threads ?? []) {
          if (tids.has(tid)) out.push(`tid ${tid} twice`);
          tids.add(tid);
        }
      });
      return out;
    },
  },
  {
    id: 'sessions-led',
    what: "every task's session is led by a task of the tree or is the root's",
    check(img) {
      const pids = new Set(tasks(img).map((t) => t.pid));
      const rootSid = tasks(img)[0]?.sid;
      return tasks(img).filter((t) => !pids.has(t.sid) && t.sid !== rootSid).map((t) => `pid ${t.pid}: session ${t.sid} has no leader in the tree`);
    },
  },
  {
    id: 'cores',
    what: 'a core-TID.img per thread: mtype X86_64, gpregs and fpregs; the leader has tc with a known task_state',
    check(img) {
      const out: string[] = [];
      for (const t of tasks(img)) {
        const lead = entries(img, `core-${t.pid}.img`)[0];
        if (!lead) {
          out.push(`pid ${t.pid}: no core`);
          continue;
        }
        if (!['TASK_ALIVE', 'TASK_DEAD', 'TASK_STOPPED', 1, 2, 3].includes(lead.tc?.task_state)) out.push(`pid ${t.pid}: task_state ${lead.tc?.task_state}`);
        if (lead.tc?.task_state === 'TASK_DEAD' || lead.tc?.task_state === 2) continue;
        for (const tid of t.threads ?? []) {
          const c = entries(img, `core-${tid}.img`)[0];
          if (!c) out.push(`tid ${tid}: no core-${tid}.img`);
          else if (c.mtype !== 'X86_64' || !c.thread_info?.gpregs || !c.thread_info?.fpregs) out.push(`tid ${tid}: mtype ${c.mtype}, gpregs ${!!c.thread_info?.gpregs}, fpregs ${!!c.thread_info?.fpregs}`);
        }
      }
      return out;
    },
  },
  {
    id: 'fds-name-files',
    what: 'files.img ids are unique; every fd of every fdinfo-N.img names one, each fd number once',
    check(img) {
      const out: string[] = [];
      const ids0 = entries(img, 'files.img').map((f) => f.id);
      const fileIds = new Set(ids0);
      if (fileIds.size !== ids0.length) out.push('a file id appears twice in files.img');
      for (const t of alive(img)) {
        const table = `fdinfo-${ids(img, t.pid)?.files_id}.img`;
        if (!has(img, table)) out.push(`pid ${t.pid}: no ${table}`);
        const fds = new Set<number>();
        for (const fd of entries(img, table)) {
          if (!fileIds.has(fd.id)) out.push(`${table}: fd ${fd.fd} names file id ${fd.id}, not in files.img`);
          if (fds.has(fd.fd)) out.push(`${table}: fd ${fd.fd} twice`);
          fds.add(fd.fd);
        }
      }
      return out;
    },
  },
  {
    id: 'mm-sane',
    what: "mm: VMAs ascending and disjoint, the exe and every file mapping name a regular file of files.img",
    check(img) {
      const out: string[] = [];
      const regs = new Set(entries(img, 'files.img').filter((f) => f.reg).map((f) => f.id));
      for (const t of alive(img)) {
        const mm = entries(img, `mm-${t.pid}.img`)[0];
        if (!mm) {
          out.push(`pid ${t.pid}: no mm`);
          continue;
        }
        if (!regs.has(mm.exe_file_id)) out.push(`pid ${t.pid}: exe_file_id ${mm.exe_file_id} is no regular file`);
        let end = 0n;
        for (const v of mm.vmas as J[]) {
          if (num(v.start) < end || num(v.end) <= num(v.start)) out.push(`pid ${t.pid}: VMA ${v.start}-${v.end} out of order`);
          end = num(v.end);
          if (bits(v.status) & VMA_FILE && !regs.has(Number(v.shmid))) out.push(`pid ${t.pid}: VMA ${v.start} maps file id ${v.shmid}, no regular file`);
        }
      }
      return out;
    },
  },
  {
    id: 'pagemap-in-private-vmas',
    what: 'pagemap: a head naming an existing pages file, entries ascending, each inside private VMAs, the pages file exactly as long',
    check(img) {
      const out: string[] = [];
      for (const t of alive(img)) {
        const [head, ...pm] = entries(img, `pagemap-${t.pid}.img`);
        const vmas = (entries(img, `mm-${t.pid}.img`)[0]?.vmas ?? []) as J[];
        const file = path.join(img.dir, `pages-${head?.pages_id}.img`);
        if (!head || !fs.existsSync(file)) {
          out.push(`pid ${t.pid}: no pagemap head or pages file`);
          continue;
        }
        let last = 0n;
        let stored = 0n;
        for (const e of pm) {
          const from = num(e.vaddr);
          const to = from + num(e.nr_pages) * PAGE;
          if (from < last) out.push(`pid ${t.pid}: pagemap entry ${e.vaddr} out of order`);
          last = to;
          if (!e.in_parent && !(bits(e.flags) & PE_PARENT)) stored += to - from;
          for (let a = from; a < to; ) {
            const v = vmas.find((w) => num(w.start) <= a && a < num(w.end));
            if (!v) {
              out.push(`pid ${t.pid}: page ${a.toString(16)} in no VMA`);
              break;
            }
            if (bits(v.status) & VMA_NOT_PRIVATE) out.push(`pid ${t.pid}: page ${a.toString(16)} in a non-private VMA`);
            a = num(v.end);
          }
        }
        const size = BigInt(fs.statSync(file).size);
        if (size !== stored) out.push(`pid ${t.pid}: ${path.basename(file)} holds ${size} bytes, pagemap says ${stored}`);
      }
      return out;
    },
  },
  {
    id: 'vdso-marked',
    what: 'one VMA with VMA_AREA_VDSO per task; [vvar] VMAs have VMA_AREA_VVAR and touch the vdso',
    check(img) {
      const out: string[] = [];
      for (const t of alive(img)) {
        const vmas = (entries(img, `mm-${t.pid}.img`)[0]?.vmas ?? []) as J[];
        const vdso = vmas.filter((v) => bits(v.status) & VMA_VDSO);
        const vvar = vmas.filter((v) => bits(v.status) & VMA_VVAR);
        if (vdso.length !== 1) out.push(`pid ${t.pid}: ${vdso.length} vdso VMAs`);
        else if (vvar.length && !vvar.some((v) => num(v.end) === num(vdso[0]!.start) || num(v.start) === num(vdso[0]!.end))) out.push(`pid ${t.pid}: vvar does not touch the vdso`);
      }
      return out;
    },
  },
  {
    id: 'seccomp-refs',
    what: "seccomp.img exists; a thread's seccomp_filter indexes one of its filters",
    check(img) {
      if (!has(img, 'seccomp.img')) return ['no seccomp.img'];
      const n = entries(img, 'seccomp.img').reduce((k, e) => k + (e.seccomp_filters?.length ?? 0), 0);
      const out: string[] = [];
      for (const t of alive(img)) {
        for (const tid of t.threads ?? []) {
          const tc = entries(img, `core-${tid}.img`)[0]?.thread_core ?? {};
          const filtered = tc.seccomp_mode === 'filter' || tc.seccomp_mode === 2;
          if (filtered && !(Number(tc.seccomp_filter ?? 0) < n)) out.push(`tid ${tid}: seccomp_filter ${tc.seccomp_filter} of ${n} filters`);
        }
      }
      return out;
    },
  },
];
