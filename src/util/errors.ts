// Errors a user sees as one line: what, which object, why.

/** The process uses something cryo cannot checkpoint; found before anything is touched. */
export class UnsupportedError extends Error {
  constructor(readonly blockers: string[]) {
    super(blockers.length === 1 ? blockers[0] : `${blockers.length} blockers:\n  ${blockers.join('\n  ')}`);
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
