// Progress of a long dump or restore, reported by the engine and drawn (or not) by its caller:
// the CLI draws a line when stderr is a terminal; `--json`, the library and the RPC get numbers.

export interface Progress {
  phase: 'dump' | 'restore';
  /** Bytes of memory (pages) written (dump) or read into the tasks (restore) so far. */
  bytesDone: number;
  bytesTotal: number;
  tasksDone: number;
  tasksTotal: number;
}

export type ProgressSink = (p: Progress) => void;
