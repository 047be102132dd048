// /proc/PID/stat: the fields cryo needs, by their position in proc(5).

export interface ProcStat {
  pid: number;
  comm: string;
  state: string;
  ppid: number;
  pgid: number;
  sid: number;
  flags: number;
  numThreads: number;
  startTime: bigint;
  startCode: bigint;
  endCode: bigint;
  startStack: bigint;
  exitSignal: number;
  nice: number;
  policy: number;
  rtPriority: number;
  startData: bigint;
  endData: bigint;
  startBrk: bigint;
  argStart: bigint;
  argEnd: bigint;
  envStart: bigint;
  envEnd: bigint;
  exitCode: number;
}

export function parseStat(text: string): ProcStat {
  const open = text.indexOf('(');
  const close = text.lastIndexOf(')');
  if (open < 0 || close < open) throw new Error('unparsable /proc/PID/stat');
  // f[0] is field 3 (state) of proc(5).
  const f = text.slice(close + 2).trim().split(' ');
  const n = (i: number) => Number(f[i - 3]);
  const b = (i: number) => BigInt(f[i - 3] ?? '0');
  return {
    pid: Number(text.slice(0, open).trim()),
    comm: text.slice(open + 1, close),
    state: f[0]!,
    ppid: n(4),
    pgid: n(5),
    sid: n(6),
    flags: n(9),
    nice: n(19),
    numThreads: n(20),
    startTime: b(22),
    startCode: b(26),
    endCode: b(27),
    startStack: b(28),
    exitSignal: n(38),
    rtPriority: n(40),
    policy: n(41),
    startData: b(45),
    endData: b(46),
    startBrk: b(47),
    argStart: b(48),
    argEnd: b(49),
    envStart: b(50),
    envEnd: b(51),
    exitCode: n(52),
  };
}

/** The kernel's PF_EXITING task flag (include/linux/sched.h), shown in stat's flags field. */
const PF_EXITING = 0x4;

/** A task on its way out: a zombie, dead, or past the start of do_exit (its cgroups and namespaces already let go). */
export const isEnding = (s: ProcStat): boolean => s.state === 'Z' || s.state === 'X' || (s.flags & PF_EXITING) !== 0;
