// `cryo check -t PID` as data: every task of the tree with its fds, mappings and namespaces, each
// with a verdict, the blockers (the same ones a dump would refuse with) and notes. Touches
// nothing: the target is not stopped or traced.
import { readFileSync, readlinkSync, statSync } from 'node:fs';
import { collectTree, endedMeanwhile, type TaskPlan, type CollectOptions } from '../dump/collect.js';
import { judgeNamespaces } from '../dump/namespaces.js';
import { mountVerdicts } from '../resources/mnt/index.js';
import { classifyVma } from '../resources/mm/vma-kind.js';
import { mappingBlockers } from '../resources/mm/dump.js';
import { findFdBlocker, describeFd, describeLink } from '../resources/files/kind.js';
import { listFds } from '../resources/files/fds.js';
import { pipeInode } from '../resources/files/our-copy.js';
import type { FileScan } from '../resources/files/scan.js';
import { parseMaps } from '../proc/index.js';
import { hex } from '../util/errors.js';
import { causeText, type BlockerCause } from '../util/blocker.js';
import type { FdResource, MapResource, Note, NsResource, TaskReport, TreeReport } from './report.js';

function commOf(pid: number): string {
  try {
    return readFileSync(`/proc/${pid}/comm`, 'utf8').trim();
  } catch {
    return '?'; // gone meanwhile
  }
}

/** One fd: its blocker if any (the same test the dump makes), and a note for a pipe leaving the tree. */
function fdResource(pid: number, fd: number, scan: FileScan, notes: Note[]): FdResource {
  let link = '?';
  let mode: number | null = null;
  try {
    link = readlinkSync(`/proc/${pid}/fd/${fd}`);
    mode = statSync(`/proc/${pid}/fd/${fd}`).mode;
  } catch {
    /* closed meanwhile */
  }
  let what = describeLink(link);
  let cause: BlockerCause | null;
  try {
    what = describeFd(pid, fd, link, mode, scan);
    cause = findFdBlocker(pid, fd, link, mode, scan);
  } catch (e) {
    cause = { kind: 'fd', reason: `cannot inspect: ${(e as Error).message}` };
  }
  if (cause) {
    // A reason often starts with what the fd is ("netlink socket — not supported yet"): said once.
    let why = causeText(cause);
    if (why.startsWith(what)) why = why.slice(what.length).replace(/^(: | — )/, '');
    return { fd, verdict: 'blocked', what, detail: why };
  }
  const peer = scan.pipePeers.get(pipeInode(link) ?? -1);
  if (!peer) return { fd, verdict: 'ok', what, detail: '' };
  const hint = `restore needs --inherit-fd fd[N]:${link}`;
  notes.push({ pid, fd, kind: 'pipe', text: peer, hint });
  return { fd, verdict: 'ok', what, detail: `${peer}: ${hint}` };
}

function mapResources(pid: number, ghostLimit: number): MapResource[] {
  return parseMaps(readFileSync(`/proc/${pid}/maps`, 'utf8')).map((m) => {
    const c = classifyVma(pid, m);
    const b = mappingBlockers(pid, [m], ghostLimit)[0];
    const what = m.path ? `${m.path}${m.deleted ? ' (deleted)' : ''}` : '(anonymous)';
    const mapping = `${hex(m.start)}-${hex(m.end)}`;
    if (b) return { mapping, verdict: 'blocked', what, detail: causeText(b) };
    const kind = 'kind' in c ? c.kind : '';
    const ghost = m.deleted && kind.startsWith('file-') && !m.path.startsWith('/memfd:');
    return { mapping, verdict: 'ok', what, detail: `${kind}${ghost ? ', contents saved as a ghost file' : ''}` };
  });
}

const NS_DETAIL = { host: "cryo's own", own: 'its own: saved and made again', tree: "the tree root's", nested: 'nested below the tree root\'s: made again', other: '' } as const;

function nsResources(pid: number, root: number, external: Map<string, string>): NsResource[] {
  const ns: NsResource[] = judgeNamespaces(pid, root).map((n) =>
    n.blocked ? { kind: n.kind, verdict: 'blocked', what: n.link, detail: n.blocked } : { kind: n.kind, verdict: 'ok', what: n.link, detail: NS_DETAIL[n.owner] },
  );
  // The root's own mount namespace: each of its mounts, after the namespaces.
  if (pid !== root) return ns;
  return [...ns, ...mountVerdicts(root, external).map((m): NsResource => (m.blocked ? { kind: 'mount', verdict: 'blocked', what: m.what, detail: m.blocked } : { kind: 'mount', verdict: 'ok', what: m.what, detail: m.detail }))];
}

function taskReport(t: TaskPlan, root: number, scan: FileScan, notes: Note[]): TaskReport {
  const state = t.zombie ? 'zombie' : t.stopped ? 'stopped' : 'running';
  const r: TaskReport = { pid: t.pid, comm: commOf(t.pid), ppid: t.ppid, pgid: t.pgid, sid: t.sid, state, threads: t.threads.length, fds: [], maps: [], namespaces: [] };
  // A process whose main thread exited shows nothing of itself under its pid (its blocker says so).
  if (t.zombie || t.leaderExited) return r;
  r.fds = listFds(t.pid).map((fd) => fdResource(t.pid, fd, scan, notes));
  r.maps = mapResources(t.pid, scan.ghostLimit);
  r.namespaces = nsResources(t.pid, root, scan.externalMounts);
  return r;
}

/** Everything `check -t` knows about the tree under `pid`. Throws UserError for a bad PID. */
export function checkTree(pid: number, opts: CollectOptions = {}): TreeReport {
  const { tasks, blockers, scan } = collectTree(pid, opts);
  const notes: Note[] = [];
  // A task that ends while it is looked at (a shell's short-lived child) is no longer part of the tree.
  const reports = tasks.flatMap((t) => {
    try {
      return [taskReport(t, pid, scan, notes)];
    } catch (e) {
      if (t.pid !== pid && endedMeanwhile(t.pid, t.pid)) return [];
      throw e;
    }
  });
  return { pid, verdict: blockers.length ? 'refused' : 'ok', blockers, notes, tasks: reports };
}
