// /proc/PID/timers: the POSIX timers of a process (timer_create), one block per timer:
//   ID: 0 / signal: 14/00000000000000ab / notify: signal/pid.42 / ClockID: 1
// (notify: "thread/tid.N" style when SIGEV_THREAD_ID is set; "none" for SIGEV_NONE).

export interface ProcTimer {
  id: number;
  signo: number;
  /** sigev_value as the kernel keeps it (a pointer or an int). */
  sival: bigint;
  /** sigev_notify: SIGEV_SIGNAL 0, SIGEV_NONE 1, with SIGEV_THREAD_ID 4 or'ed in for a thread. */
  notify: number;
  /** The process or thread the signal goes to. */
  target: number;
  clockId: number;
}

const NOTIFY: Record<string, number> = { signal: 0, none: 1, thread: 2 };
const SIGEV_THREAD_ID = 4;

export function parseTimers(text: string): ProcTimer[] {
  const out: ProcTimer[] = [];
  let cur: Partial<ProcTimer> | null = null;
  for (const line of text.split('\n')) {
    const m = /^(\w+):\s*(.*)$/.exec(line);
    if (!m) continue;
    const [, key, value] = m as unknown as [string, string, string];
    if (key === 'ID') {
      cur = { id: Number(value) };
      out.push(cur as ProcTimer);
    } else if (!cur) {
      throw new Error(`/proc timers: ${key} before any ID`);
    } else if (key === 'signal') {
      const [signo, sival] = value.split('/');
      cur.signo = Number(signo);
      cur.sival = BigInt('0x' + (sival ?? '0').replace(/^0x/, ''));
    } else if (key === 'notify') {
      const n = /^(\w+)\/(pid|tid)\.(\d+)$/.exec(value);
      if (!n || NOTIFY[n[1]!] === undefined) throw new Error(`/proc timers: notify "${value}" not understood`);
      cur.notify = NOTIFY[n[1]!]! | (n[2] === 'tid' ? SIGEV_THREAD_ID : 0);
      cur.target = Number(n[3]);
    } else if (key === 'ClockID') {
      cur.clockId = Number(value);
    }
  }
  return out;
}
