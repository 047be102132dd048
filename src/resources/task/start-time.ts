// A process's start time (/proc/PID/stat field 22), which tells it from a later process that got
// the same PID: a guard that outlives cryo acts only on the processes it was told of.
import { readFileSync } from 'node:fs';
import { parseStat } from '../../proc/stat.js';

/** The start time of `pid` as text; '0' when it is gone. */
export function startTimeOf(pid: number): string {
  try {
    return parseStat(readFileSync(`/proc/${pid}/stat`, 'utf8')).startTime.toString();
  } catch {
    return '0';
  }
}
