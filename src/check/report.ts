// What `check` finds, as data: the CLI prints it, `--json` and the library hand it on as it is.
import type { Blocker } from '../util/blocker.js';

/** One kernel feature cryo relies on, tried for real where it can be. */
export interface Probe {
  name: string;
  /** Without it cryo cannot work; the others only limit what it can do. */
  required: boolean;
  ok: boolean;
  /** What it is needed for. */
  detail: string;
}

export interface KernelReport {
  /** The running kernel's release (`uname -r`). */
  kernel: string;
  /** 'refused' when a required feature is missing. */
  verdict: 'ok' | 'refused';
  probes: Probe[];
}

/** An fd, a mapping or a namespace of a task, with whether cryo can checkpoint it. */
export interface Resource {
  /** 'ok', or 'blocked' (it is among the report's blockers). */
  verdict: 'ok' | 'blocked';
  /** What it is: `pipe:[123]`, `unix stream socket ...`, `/usr/bin/sleep`. */
  what: string;
  /** Why it is blocked, or how it is saved (`file-private`, `contents saved as a ghost file`). */
  detail: string;
}

export interface FdResource extends Resource {
  fd: number;
}

export interface MapResource extends Resource {
  /** `0xSTART-0xEND`, as blockers name a mapping. */
  mapping: string;
}

export interface NsResource extends Resource {
  kind: string;
}

export interface TaskReport {
  pid: number;
  comm: string;
  ppid: number;
  pgid: number;
  sid: number;
  state: 'running' | 'stopped' | 'zombie';
  threads: number;
  fds: FdResource[];
  maps: MapResource[];
  namespaces: NsResource[];
}

/** Not a blocker, but something the user must know, e.g. a pipe to a process outside the tree. */
export interface Note {
  pid: number;
  fd?: number;
  kind: string;
  text: string;
  /** What to do about it (a restore flag). */
  hint?: string;
}

export interface TreeReport {
  pid: number;
  /** 'refused' when there is at least one blocker: a dump would not be attempted. */
  verdict: 'ok' | 'refused';
  blockers: Blocker[];
  notes: Note[];
  tasks: TaskReport[];
}
