// How an engine error becomes a verdict: refused (blockers, nothing touched), or failed.
import { UnsupportedError } from '../util/errors.js';
import { InterruptedError, SIG } from '../sys/index.js';
import type { Blocker } from '../util/blocker.js';

export const SIGNAL_NAMES: Record<number, string> = { [SIG.HUP]: 'SIGHUP', [SIG.INT]: 'SIGINT', [SIG.TERM]: 'SIGTERM' };

export interface Outcome {
  verdict: 'refused' | 'failed';
  blockers: Blocker[];
  error: string;
  signal?: number;
}

export function outcomeOf(e: unknown): Outcome {
  if (e instanceof UnsupportedError) return { verdict: 'refused', blockers: e.blockers, error: e.message };
  if (e instanceof InterruptedError) {
    const name = SIGNAL_NAMES[e.signal] ?? `signal ${e.signal}`;
    return { verdict: 'failed', blockers: [], error: `dump interrupted by ${name}: the process was put back and left running, no images written`, signal: e.signal };
  }
  return { verdict: 'failed', blockers: [], error: e instanceof Error ? e.message : String(e) };
}
