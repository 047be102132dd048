// A task's namespace as its /proc/PID/ns link names it (`pid:[4026531836]`); null when gone.
import { readlinkSync } from 'node:fs';

export function nsLink(pid: number | 'self', kind: string): string | null {
  try {
    return readlinkSync(`/proc/${pid}/ns/${kind}`);
  } catch {
    return null;
  }
}
