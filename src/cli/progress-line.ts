// The progress line of a long dump or restore, drawn by cli-progress on stderr: only on a terminal,
// never with --json, and only once the work has taken about a second (a quick one stays silent).
import cliProgress from 'cli-progress';
import type { Progress, ProgressSink } from '../util/progress.js';

/** How long a dump or restore runs before its line appears (CRYO_PROGRESS_DELAY_MS overrides). */
const DELAY_MS = Number(process.env.CRYO_PROGRESS_DELAY_MS ?? 1000);
const MiB = 1 << 20;

export interface ProgressLine {
  /** For the engine; undefined when no line is to be drawn. */
  sink: ProgressSink | undefined;
  /** Draws the last state and ends the line (if it was shown). */
  stop(): void;
}

export function progressLine(stream: NodeJS.WriteStream, wanted: boolean): ProgressLine {
  if (!wanted || !stream.isTTY) return { sink: undefined, stop: () => {} };
  const started = performance.now();
  let bar: cliProgress.SingleBar | null = null;
  const payload = (p: Progress) => ({
    phase: p.phase,
    done: (p.bytesDone / MiB).toFixed(0),
    all: (p.bytesTotal / MiB).toFixed(0),
    tasks: `${p.tasksDone}/${p.tasksTotal}`,
  });
  const sink: ProgressSink = (p) => {
    if (!bar) {
      if (performance.now() - started < DELAY_MS) return;
      bar = new cliProgress.SingleBar(
        {
          stream, format: '{phase} [{bar}] {percentage}% | {done}/{all} MiB of memory | tasks {tasks}', barsize: 30, clearOnComplete: false,
          // No SIGINT/SIGTERM handlers of its own: they would take the signal from the dump's rollback (sys/interrupt.ts).
          gracefulExit: false, hideCursor: false,
        },
        cliProgress.Presets.shades_classic,
      );
      bar.start(Math.max(p.bytesTotal, 1), p.bytesDone, payload(p));
      return;
    }
    bar.setTotal(Math.max(p.bytesTotal, 1));
    bar.update(p.bytesDone, payload(p));
  };
  return {
    sink,
    stop: () => {
      bar?.stop();
      bar = null;
    },
  };
}
