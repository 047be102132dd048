// What cryo saves of a tree's own UTS and IPC namespaces, in the JSON form the ns helper
// (helper.ts) exchanges with cryo, and the helper's spawner. The images (utsns-N.img,
// ipcns-*-N.img) are made from this by images.ts.
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { UserError } from '../../util/errors.js';
import type { UtsData } from './uts.js';
import type { IpcVars } from './ipc-vars.js';
import type { SemSet, MsgQueue, IpcDesc } from './ipc-objects.js';

export interface ShmJson {
  desc: IpcDesc;
  /** Bytes, as a decimal string (64-bit). */
  size: string;
  /** Contents padded to 4 bytes, base64. */
  data: string;
}

export interface IpcState {
  vars: IpcVars;
  sems: SemSet[];
  msgs: MsgQueue[];
  shms: ShmJson[];
}

export interface NsState {
  uts?: UtsData;
  ipc?: IpcState;
}

export type NsHelperKind = 'uts' | 'ipc';

const HELPER = fileURLToPath(new URL('./helper.js', import.meta.url));

/** Runs the helper against task `pid`'s namespaces; its stdout, or a UserError with its stderr. */
export function runNsHelper(args: string[], input?: string): string {
  const r = spawnSync(process.execPath, [HELPER, ...args], { input: input ?? '', encoding: 'utf8', maxBuffer: 1 << 30, timeout: 120_000 });
  if (r.error) throw new UserError(`namespace helper (${args.join(' ')}): ${r.error.message}`);
  if (r.status !== 0) throw new UserError(`namespace helper (${args.join(' ')}) failed: ${(r.stderr || `exit ${r.status ?? r.signal}`).trim()}`);
  return r.stdout;
}

export function dumpNsState(pid: number, kinds: NsHelperKind[]): NsState {
  if (!kinds.length) return {};
  return JSON.parse(runNsHelper(['dump', String(pid), kinds.join(',')])) as NsState;
}

/** Rebuilds `state` in task `pid`'s (new, empty) namespaces; old -> new SysV shm ids. */
export function restoreNsState(pid: number, kinds: NsHelperKind[], state: NsState): Map<number, number> {
  if (!kinds.length) return new Map();
  const out = JSON.parse(runNsHelper(['restore', String(pid), kinds.join(',')], JSON.stringify(state))) as { shmIds: [number, number][] };
  return new Map(out.shmIds);
}

export function removeNsSegments(pid: number, ids: number[]): void {
  if (ids.length) runNsHelper(['rmshm', String(pid), ...ids.map(String)]);
}
