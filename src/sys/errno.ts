// errno values and names for x86_64 Linux, and the typed error every failing syscall raises.
import { constants as osConstants } from 'node:os';

const errnoNames = new Map<number, string>();
for (const [name, value] of Object.entries(osConstants.errno)) {
  if (!errnoNames.has(value)) errnoNames.set(value, name);
}

export function errnoName(errno: number): string {
  return errnoNames.get(errno) ?? `errno ${errno}`;
}

export const E = osConstants.errno;

/** A failed system call: which call, for what, and the kernel's errno. */
export class SysError extends Error {
  constructor(
    readonly call: string,
    readonly errno: number,
    readonly detail?: string,
  ) {
    super(`${call}${detail ? ` (${detail})` : ''}: ${errnoName(errno)}`);
    this.name = 'SysError';
  }
}
