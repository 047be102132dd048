// Which terminal an fd is, from its device number (fstat st_rdev, glibc's dev_t encoding, which is
// also /proc/PID/stat's tty_nr), and whether cryo may checkpoint it: the pure decision the dump
// and `check` ask before touching anything. Device majors are the kernel's (linux/major.h), the
// same classes CRIU's get_tty_driver() makes.
import type { Blocker } from '../../util/blocker.js';
import { extTtyKey } from '../../util/ext-tty.js';

export { extTtyKey };

export type TtyClass =
  | 'pty-master' // /dev/ptmx (5:2) or a legacy-range master (128..135)
  | 'pty-slave' // /dev/pts/N (136:N)
  | 'ctty' // /dev/tty (5:0): whatever the opener's controlling terminal was
  | 'console' // /dev/console (5:1)
  | 'vt' // /dev/ttyN, /dev/tty0 (4:0..63)
  | 'serial' // /dev/ttyS* (4:64+), USB serial (188), low-density serial (204)
  | 'other'; // not a terminal device cryo knows

export function devMajor(dev: number): number {
  return ((dev >>> 8) & 0xfff) | Math.floor(dev / 2 ** 32) & ~0xfff;
}

export function devMinor(dev: number): number {
  return (dev & 0xff) | ((dev >>> 12) & 0xfff00);
}

export function makeDev(major: number, minor: number): number {
  return ((minor & 0xff) | ((major & 0xfff) << 8) | ((minor & ~0xff) << 12)) >>> 0;
}

const UNIX98_PTY_MASTER_MAJOR = 128;
const UNIX98_PTY_SLAVE_MAJOR = 136;

export function classifyTty(rdev: number): TtyClass {
  const major = devMajor(rdev);
  const minor = devMinor(rdev);
  if (major === 5) return minor === 0 ? 'ctty' : minor === 1 ? 'console' : minor === 2 ? 'pty-master' : 'other';
  if (major === 4) return minor < 64 ? 'vt' : 'serial';
  if (major === 188 || major === 204) return 'serial';
  if (major >= UNIX98_PTY_MASTER_MAJOR && major < UNIX98_PTY_MASTER_MAJOR + 8) return 'pty-master';
  if (major === UNIX98_PTY_SLAVE_MAJOR) return 'pty-slave';
  return 'other';
}

/** The pty index of a slave's device number (its minor: the kernel registers all of them on 136). */
export function slaveIndex(rdev: number): number {
  return devMinor(rdev);
}

/** One terminal fd seen in the tree. */
export interface SeenTty {
  pid: number;
  fd: number;
  /** what /proc/PID/fd/N says, for messages */
  path: string;
  rdev: number;
  /** st_dev of the file (a slave's devpts instance): with rdev, CRIU's key of a terminal */
  dev?: number;
  /** pty index: TIOCGPTN of a master, the minor of a slave */
  index?: number;
  /** the session the terminal is the controlling tty of (0: none), from TIOCGSID or /proc stat */
  sid: number;
  /** for /dev/tty: the rdev of the task's controlling terminal (stat tty_nr), 0 if none */
  cttyRdev?: number;
  /** a slave whose master was closed (dumpPtyEnd hungUp): no master exists anywhere */
  hungUp?: boolean;
}

export interface TreeTtys {
  /** every PID in the tree */
  pids: ReadonlySet<number>;
  /** indexes of the pty masters some task of the tree holds */
  masterIndexes: ReadonlySet<number>;
  /** --shell-job: the tree's terminal from outside is the caller's, attached again on restore */
  shellJob: boolean;
  /** --external tty[RDEV:DEV]: terminals from outside the caller hands back at restore (external.ts), by key */
  external?: ReadonlySet<string>;
}

/** Is the terminal named with --external? A controlling tty is known by its rdev only (/proc stat's tty_nr). */
export function isExternal(tree: TreeTtys, rdev: number, dev?: number): boolean {
  if (!tree.external?.size) return false;
  if (dev !== undefined) return tree.external.has(extTtyKey(rdev, dev));
  const prefix = `tty[${rdev.toString(16)}:`;
  return [...tree.external].some((k) => k.startsWith(prefix));
}

/** What to do about a terminal from outside the tree; `key` when its device is known. */
export function outsideHint(key?: string): string {
  const k = key ?? 'tty[RDEV:DEV]';
  return `run it with --shell-job to reattach it to the terminal cryo runs on, name it with --external ${k} to hand a terminal in at restore (--inherit-fd fd[N]:${k}), or start it detached (setsid, a terminal of its own)`;
}

function refuse(s: SeenTty, reason: string, hint?: string): Blocker {
  const b: Blocker = { pid: s.pid, fd: s.fd, kind: 'terminal', reason };
  if (hint) b.hint = hint;
  return b;
}

/**
 * Why one terminal fd cannot be checkpointed, or null. A pty whose master is in the tree is
 * always fine; a slave of an outside master, a /dev/tty of an outside terminal, or a terminal
 * that is the controlling tty of a session led from outside, needs --shell-job; consoles,
 * virtual consoles, serial lines and other devices are refused.
 */
export function ttyBlocker(s: SeenTty, tree: TreeTtys): Blocker | null {
  const cls = classifyTty(s.rdev);
  if (cls === 'ctty' && s.cttyRdev && isExternal(tree, s.cttyRdev)) return null; // opened in the task once its terminal is back
  if (cls !== 'ctty' && s.dev !== undefined && isExternal(tree, s.rdev, s.dev)) {
    if (cls === 'pty-slave' && tree.masterIndexes.has(s.index ?? slaveIndex(s.rdev))) {
      return refuse(s, `terminal ${s.path} is named with --external ${extTtyKey(s.rdev, s.dev)}, but its master is in the tree`);
    }
    return null; // the caller's: handed in at restore (--inherit-fd), whoever leads its session
  }
  const hint = outsideHint(s.dev !== undefined ? extTtyKey(s.rdev, s.dev) : undefined);
  switch (cls) {
    case 'console':
      return refuse(s, `console ${s.path} — not supported`);
    case 'vt':
      return refuse(s, `virtual console ${s.path} — not supported`);
    case 'serial':
      return refuse(s, `serial terminal ${s.path} — not supported`);
    case 'other':
      return refuse(s, `terminal device ${s.path} (${devMajor(s.rdev)}:${devMinor(s.rdev)}) — not supported`);
    case 'ctty': {
      const real = s.cttyRdev ?? 0;
      if (!real) return refuse(s, `${s.path} opened with no controlling terminal — not supported`);
      const realCls = classifyTty(real);
      if (realCls !== 'pty-slave') return refuse(s, `${s.path} is ${realCls} ${devMajor(real)}:${devMinor(real)} — not supported`);
      if (tree.masterIndexes.has(slaveIndex(real)) || tree.shellJob) return sessionBlocker(s, tree);
      return refuse(s, `${s.path} is /dev/pts/${slaveIndex(real)}, a terminal from outside the tree`, outsideHint());
    }
    case 'pty-slave':
      if (s.hungUp) return null; // restored hung up, with a master of its own closed at once
      if (!tree.masterIndexes.has(s.index ?? slaveIndex(s.rdev)) && !tree.shellJob)
        return refuse(s, `terminal ${s.path} from outside the tree (its master is not in it)`, hint);
      return sessionBlocker(s, tree);
    case 'pty-master':
      return sessionBlocker(s, tree);
  }
}

function sessionBlocker(s: SeenTty, tree: TreeTtys): Blocker | null {
  if (!s.sid || tree.pids.has(s.sid) || tree.shellJob) return null;
  return refuse(s, `terminal ${s.path} is the controlling terminal of session ${s.sid}, led from outside the tree`, outsideHint(s.dev !== undefined ? extTtyKey(s.rdev, s.dev) : undefined));
}

/**
 * Every blocker of the tree's terminals, plus CRIU's rule for --shell-job: at most one outside
 * pty (the one cryo's own terminal replaces on restore).
 */
export function ttyBlockers(seen: readonly SeenTty[], tree: TreeTtys): Blocker[] {
  const out: Blocker[] = [];
  const outside = new Map<number, SeenTty>();
  for (const s of seen) {
    const b = ttyBlocker(s, tree);
    if (b) out.push(b);
    const cls = classifyTty(s.rdev);
    const real = cls === 'ctty' ? s.cttyRdev ?? 0 : s.rdev;
    const ext = cls === 'ctty' ? isExternal(tree, real) : s.dev !== undefined && isExternal(tree, s.rdev, s.dev);
    if ((cls === 'pty-slave' || cls === 'ctty') && !s.hungUp && !ext && real && classifyTty(real) === 'pty-slave' && !tree.masterIndexes.has(slaveIndex(real)))
      if (!outside.has(slaveIndex(real))) outside.set(slaveIndex(real), s);
  }
  if (tree.shellJob && outside.size > 1) {
    const [, second] = [...outside.values()];
    out.push(refuse(second!, `the tree holds ${outside.size} terminals from outside (${[...outside.keys()].map((i) => `/dev/pts/${i}`).join(', ')}); --shell-job reattaches only one`));
  }
  return out;
}
