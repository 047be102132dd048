// The library's log: the engine's Log, also keeping how long each step took for the result's
// timings (the engine wraps its phases in log.step).
import { Log } from '../util/log.js';
import type { Timings } from './types.js';

export class TimedLog extends Log {
  readonly phases: Record<string, number> = {};
  private readonly started = performance.now();

  override step<T>(name: string, fn: () => T): T {
    const t = performance.now();
    try {
      return super.step(name, fn);
    } finally {
      // Nested steps are counted in their own name and in the enclosing one's time.
      this.phases[name] = (this.phases[name] ?? 0) + (performance.now() - t);
    }
  }

  timings(extra: { frozenMs?: number } = {}): Timings {
    const round = (ms: number) => Math.round(ms * 10) / 10;
    const phases = Object.fromEntries(Object.entries(this.phases).map(([k, v]) => [k, round(v)]));
    const t: Timings = { totalMs: round(performance.now() - this.started), phases };
    if (extra.frozenMs !== undefined) t.frozenMs = round(extra.frozenMs);
    return t;
  }
}
