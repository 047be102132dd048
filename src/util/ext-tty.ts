// CRIU's name of one terminal, tty[RDEV:DEV] (st_rdev and st_dev in hex, glibc's dev_t encoding),
// as `dump --external` and `restore --inherit-fd` take it. Pure, and below everything: the
// command line parses it at start-up without loading the engine (resources/tty/external.ts).

/** The key of a terminal: lowercase hex without leading zeros. */
export function extTtyKey(rdev: number, dev: number): string {
  return `tty[${rdev.toString(16)}:${dev.toString(16)}]`;
}

/**
 * `tty[RDEV:DEV]` normalised; null when `spec` is not of that form. Throws for /dev/ptmx (5:2)
 * and /dev/tty (5:0): every pty master, and every opener's own terminal, share their device
 * number, so neither names one terminal.
 */
export function parseExtTty(spec: string): string | null {
  const m = /^tty\[([0-9a-f]+):([0-9a-f]+)\]$/i.exec(spec);
  if (!m) return null;
  const rdev = parseInt(m[1]!, 16);
  if (rdev === 0x500 || rdev === 0x502) {
    throw new Error(`${spec} is ${rdev === 0x500 ? '/dev/tty' : '/dev/ptmx'}, which names no one terminal: name the terminal itself (its st_rdev and st_dev, in hex; for /dev/pts/N, RDEV is 88xx with xx the index)`);
  }
  return extTtyKey(rdev, parseInt(m[2]!, 16));
}
