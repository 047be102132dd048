// Errors a user sees as one line: what, which object, why.
import { blockerText, type Blocker } from './blocker.js';

/** The process uses something cryo cannot checkpoint; found before anything is touched. */
export class UnsupportedError extends Error {
  readonly blockers: Blocker[];
  constructor(blockers: Blocker[]) {
    const lines = blockers.map(blockerText);
    super(lines.length === 1 ? lines[0] : `${lines.length} blockers:\n  ${lines.join('\n  ')}`);
    this.blockers = blockers;
    this.name = 'UnsupportedError';
  }
}

/** Bad input from the user or a bad image directory. */
export class UserError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'UserError';
  }
}

export function hex(v: bigint | number): string {
  return '0x' + v.toString(16);
}
