// The terminal fields of /proc/PID/stat (proc(5) fields 6-8): a task's session, its controlling
// terminal (tty_nr, a device number in glibc's dev_t encoding, 0 if none) and that terminal's
// foreground process group (tpgid, -1 if none). Read from outside, these give the session and
// foreground group of a pty slave the dumper holds no master of (TIOCGSID/TIOCGPGRP on a slave
// answer only a caller whose controlling terminal it is).

export interface StatTty {
  pid: number;
  sid: number;
  ttyNr: number;
  tpgid: number;
}

export function parseStatTty(text: string): StatTty {
  const open = text.indexOf('(');
  const close = text.lastIndexOf(')');
  if (open < 0 || close < open) throw new Error('unparsable /proc/PID/stat');
  // f[0] is field 3 (state).
  const f = text.slice(close + 2).trim().split(' ');
  return { pid: Number(text.slice(0, open).trim()), sid: Number(f[3]), ttyNr: Number(f[4]), tpgid: Number(f[5]) };
}

/**
 * The session and foreground group of the terminal `rdev`, from the stat of tasks that have it
 * as their controlling terminal (any one of them says it), or null when none of them has it.
 */
export function terminalSession(stats: readonly StatTty[], rdev: number): { sid: number; pgrp: number } | null {
  const s = stats.find((t) => t.ttyNr === rdev);
  return s ? { sid: s.sid, pgrp: Math.max(0, s.tpgid) } : null;
}
