// `cryo check` as text: for -t, the blockers first, then the notes, then a one-line verdict;
// every task, fd, mapping and namespace only when asked (-v).
import { blockerText } from '../util/blocker.js';
import type { CheckResult } from '../api/types.js';
import type { KernelReport, Resource, TaskReport, TreeReport } from '../check/report.js';

const plural = (n: number, one: string, many = `${one}s`) => `${n} ${n === 1 ? one : many}`;

function kernelText(r: KernelReport): string[] {
  const lines = r.probes.map((p) => `${p.ok ? 'ok     ' : p.required ? 'MISSING' : 'absent '} ${p.name} — ${p.detail}`);
  const missing = r.probes.filter((p) => p.required && !p.ok).length;
  lines.push(missing ? `cryo cannot work here: ${plural(missing, 'required feature')} missing` : `kernel ${r.kernel}: everything cryo needs is there`);
  return lines;
}

function verdictOf(x: Resource): string {
  if (x.verdict === 'blocked') return x.detail;
  return x.detail ? `ok (${x.detail})` : 'ok';
}

function taskText(t: TaskReport): string[] {
  const what = t.state === 'running' ? plural(t.threads, 'thread') : t.state;
  const lines = [`pid ${t.pid} (${t.comm}), parent ${t.ppid || '-'}, group ${t.pgid}, session ${t.sid}: ${what}`];
  for (const f of t.fds) lines.push(`  fd ${String(f.fd).padEnd(4)} ${f.what} — ${verdictOf(f)}`);
  for (const m of t.maps) lines.push(`  map  ${m.mapping} ${m.what} — ${verdictOf(m)}`);
  for (const n of t.namespaces) lines.push(`  ns   ${n.kind.padEnd(6)} ${n.what} — ${verdictOf(n)}`);
  return lines;
}

function treeText(r: TreeReport & { counts: { tasks: number; threads: number; fds: number; maps: number } }, verbose: boolean): string[] {
  const lines = r.blockers.map(blockerText);
  for (const n of r.notes) lines.push(`note: pid ${n.pid}${n.fd !== undefined ? ` fd ${n.fd}` : ''}: ${n.text}${n.hint ? ` — ${n.hint}` : ''}`);
  const c = r.counts;
  const size = `${plural(c.tasks, 'task')}, ${plural(c.threads, 'thread')}, ${plural(c.fds, 'fd')}, ${plural(c.maps, 'mapping')}`;
  lines.push(
    r.verdict === 'ok'
      ? `pid ${r.pid} can be checkpointed (${size})`
      : `cannot checkpoint pid ${r.pid}: ${plural(r.blockers.length, 'blocker')}${verbose ? '' : ' (every resource with -v)'}`,
  );
  if (verbose) lines.push(...r.tasks.flatMap(taskText));
  return lines;
}

/** The lines `cryo check` prints on stdout (none for a check that failed: its error goes to stderr). */
export function checkText(r: CheckResult, verbose: boolean): string[] {
  if (r.target === 'kernel') return kernelText(r);
  if (r.verdict === 'failed') return [];
  return treeText(r, verbose);
}
