// The terminals of one restore: tty-info.img and tty-data.img as read, the pty pairs made so far
// (each once, at its index, on first use by any of its fds), the caller's own terminal for
// --shell-job, and the session hooks that make a session's terminal its controlling tty again
// and put its foreground group back.
//
// Who does what, and when (the kernel's rules): TIOCSCTTY only for the calling process, a session
// leader without one, and before it forks the rest of its session (a process inherits its
// controlling tty at fork only): so the leader, right after setsid. TIOCSPGRP only from a member
// of the session whose controlling tty it is, for a group of that session that exists: so the
// leader of the foreground group, once it exists (its own group), with SIGTTOU blocked (a caller
// outside the foreground group would get it otherwise). Both run in the restored task, on a
// temporary fd it takes from the restorer.
import { closeSync, openSync, readFileSync } from 'node:fs';
import type { tty_info_entry, tty_data_entry } from '../../image/gen/tty_pb.js';
import { TtyType } from '../../image/gen/tty_pb.js';
import { O, F, SIG, sys, openPtyPeer, getSigmask, setSigmask } from '../../sys/index.js';
import { parseStatTty } from '../../proc/tty.js';
import { UserError } from '../../util/errors.js';
import type { RestoreTask } from '../context.js';
import { classifyTty, slaveIndex } from './classify.js';
import { hasSettings, ptyInfoId } from './pty.js';
import { createPtyPair, applyTtyParams, type PtyPair } from './create.js';
import { remoteTtyCaller, acquireControllingTty, setForegroundGroup } from './ctty.js';
import { isExternalTty, keyOfInfo, openExternalTty } from './external.js';

export class RestoreTerminals {
  readonly infos = new Map<number, tty_info_entry>();
  readonly data = new Map<number, Buffer>();
  private pairs = new Map<number, PtyPair & { slaveHeld: boolean }>();
  private callerTty: { path: string; applied: boolean } | null = null;
  /** --inherit-fd: cryo's fd for each external terminal (external.ts), by key. */
  private external = new Map<string, number>();

  constructor(infos: tty_info_entry[], data: tty_data_entry[], readonly shellJob: boolean) {
    for (const i of infos) {
      if (this.infos.has(i.id)) throw new UserError(`tty-info.img: id ${i.id} appears twice`);
      this.infos.set(i.id, i);
    }
    for (const d of data) this.data.set(d.ttyId, Buffer.from(d.data));
  }

  /** Is this pty's master in the images (else: a slave from outside, or a hung-up one)? */
  hasMaster(index: number): boolean {
    return this.infos.has(ptyInfoId(index, 'master'));
  }

  /** A slave whose master was outside the tree (the caller's terminal with --shell-job). */
  isOutside(info: tty_info_entry): boolean {
    return info.type === TtyType.PTY && !!info.pty && !this.hasMaster(info.pty.index) && hasSettings(info);
  }

  private pair(index: number): PtyPair & { slaveHeld: boolean } {
    let p = this.pairs.get(index);
    if (!p) {
      const m = ptyInfoId(index, 'master');
      const s = ptyInfoId(index, 'slave');
      const made = createPtyPair({
        index, ...(this.infos.has(m) ? { master: this.infos.get(m)! } : {}), ...(this.infos.has(s) ? { slave: this.infos.get(s)! } : {}),
        ...(this.data.has(m) ? { fromMaster: this.data.get(m)! } : {}), ...(this.data.has(s) ? { fromSlave: this.data.get(s)! } : {}),
      });
      p = { ...made, slaveHeld: made.slave >= 0 };
      this.pairs.set(index, p);
    }
    return p;
  }

  /** Our fd on the pty master `index` (the one description of it the tasks share). */
  openMaster(index: number, flags: number): number {
    const p = this.pair(index);
    if (p.master < 0) throw new UserError(`pty ${index}: master record of a hung-up slave`);
    // One description of a master per index: ours goes to the session, which closes it at the end.
    sys('fcntl', [p.master, F.SETFL, flags & ~(O.ACCMODE | O.CLOEXEC)], `pty ${index} master flags`);
    return p.master;
  }

  /**
   * A new description of the slave `index` with the record's flags (access mode, O_LARGEFILE
   * included: TIOCGPTPEER sets only what it is given). The slave createPtyPair opened (to queue
   * data) is closed once another exists, so the master never sees its slave closed meanwhile.
   */
  openSlave(index: number, flags: number): number {
    const p = this.pair(index);
    if (p.master < 0) {
      // Hung up: no master to open another from; the first record takes the one made.
      if (!p.slaveHeld) return dupWithFlags(p.slave, flags);
      p.slaveHeld = false;
      sys('fcntl', [p.slave, F.SETFL, flags & ~(O.ACCMODE | O.CLOEXEC)], `pty ${index} slave flags`);
      return p.slave;
    }
    const fd = openPtyPeer(p.master, (flags & ~O.CLOEXEC) | O.NOCTTY | O.CLOEXEC);
    if (p.slaveHeld) {
      closeSync(p.slave);
      p.slaveHeld = false;
    }
    return fd;
  }

  /** --shell-job: a description of the terminal cryo runs on, with the dumped one's settings. */
  openCallerTerminal(info: tty_info_entry, flags: number): number {
    if (!this.shellJob) throw new UserError(`pty ${info.pty?.index}: a terminal from outside the dumped tree — restore with --shell-job to attach it to this one`);
    if (!this.callerTty) this.callerTty = { path: callerTerminalPath(), applied: false };
    const fd = openSync(this.callerTty.path, (flags & ~O.CLOEXEC) | O.NOCTTY | O.CLOEXEC);
    if (!this.callerTty.applied) {
      applyTtyParams(fd, info, `${this.callerTty.path} (--shell-job)`);
      this.callerTty.applied = true;
    }
    return fd;
  }

  /**
   * Before anything is made: the fd given for each external terminal of the images; one missing
   * is refused, naming what to pass.
   */
  takeExternal(inherit: Map<string, number>): void {
    const keys = [...new Set([...this.infos.values()].filter(isExternalTty).map(keyOfInfo))];
    const missing = keys.filter((k) => !inherit.has(k));
    if (missing.length) {
      throw new UserError(`the images hold terminal(s) from outside the dumped tree (dump --external): give one for each with ${missing.map((k) => `--inherit-fd 'fd[N]:${k}'`).join(' ')} (N: an fd of cryo restore's on a terminal, a pty slave or its master)`);
    }
    for (const k of keys) this.external.set(k, inherit.get(k)!);
  }

  /** A new description of the terminal given for an external one, with the record's flags. */
  openExternal(info: tty_info_entry, flags: number): number {
    const key = keyOfInfo(info);
    const given = this.external.get(key);
    if (given === undefined) throw new UserError(`terminal ${key} from outside the dumped tree: restore with --inherit-fd 'fd[N]:${key}'`);
    return openExternalTty(given, flags, key);
  }

  /** The terminal of session `sid` in the images: a pty of the tree, or an external one. */
  private sessionPty(sid: number): tty_info_entry | undefined {
    return [...this.infos.values()].find((i) => i.sid === sid && (isExternalTty(i) || (i.type === TtyType.PTY && i.pty && hasSettings(i) && this.hasMaster(i.pty.index))));
  }

  /** A new description of a session's terminal (sessionPty's), for the session hooks. */
  private openForSession(info: tty_info_entry): number {
    return isExternalTty(info) ? this.openExternal(info, O.RDWR) : this.openSlave(info.pty!.index, O.RDWR);
  }

  /** In a task just put in its session: a leader takes its terminal as controlling tty. */
  afterSetsid(r: RestoreTask): void {
    if (!this.infos.size) return;
    const st = statOf(r.pid);
    if (st.sid !== r.pid) return;
    const info = this.sessionPty(r.pid);
    if (!info) return;
    const ours = this.openForSession(info);
    try {
      withFdInTask(r, ours, (fd) => acquireControllingTty(remoteTtyCaller(r.remote, r.scratch), fd));
    } finally {
      closeSync(ours);
    }
  }

  /** In a task whose children exist: the leader of a terminal's foreground group puts it in front. */
  afterChildren(r: RestoreTask): void {
    if (!this.infos.size) return;
    const st = statOf(r.pid);
    if (st.pgrp !== r.pid) return;
    const tree = this.sessionPty(st.sid);
    const outside = this.shellJob ? [...this.infos.values()].find((i) => this.isOutside(i)) : undefined;
    const info = tree && tree.pgrp === r.pid ? tree : outside && outside.pgrp === r.pid ? outside : undefined;
    if (!info || info.pgrp === st.sid) return; // the leader's own group is in front since TIOCSCTTY
    const ours = info === tree ? this.openForSession(info) : openSync(callerTerminalPath(), O.RDWR | O.NOCTTY | O.CLOEXEC);
    const mask = getSigmask(r.pid);
    try {
      setSigmask(r.pid, mask | (1n << BigInt(SIG.TTOU - 1)));
      withFdInTask(r, ours, (fd) => setForegroundGroup(remoteTtyCaller(r.remote, r.scratch), fd, r.pid));
    } finally {
      setSigmask(r.pid, mask);
      closeSync(ours);
    }
  }
}

function statOf(pid: number): { sid: number; pgrp: number } {
  const text = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const f = text.slice(text.lastIndexOf(')') + 2).split(' ');
  return { pgrp: Number(f[2]), sid: parseStatTty(text).sid };
}

/** Another fd on the same description, its status flags set to the record's. */
function dupWithFlags(fd: number, flags: number): number {
  const d = sys('fcntl', [fd, F.DUPFD_CLOEXEC, 0], 'dup of a terminal fd');
  sys('fcntl', [d, F.SETFL, flags & ~(O.ACCMODE | O.CLOEXEC)], 'terminal fd flags');
  return d;
}

/** The path of cryo's own controlling terminal (a pty slave), for --shell-job. */
export function callerTerminalPath(): string {
  const nr = parseStatTty(readFileSync('/proc/self/stat', 'utf8')).ttyNr;
  if (!nr || classifyTty(nr) !== 'pty-slave') throw new UserError('--shell-job: cryo restore has no pseudo-terminal as its controlling terminal to attach the job to');
  return `/dev/pts/${slaveIndex(nr)}`;
}

/** Runs `fn` with our fd `ours` as a temporary fd of the task (pidfd_getfd), closed after. */
function withFdInTask(r: RestoreTask, ours: number, fn: (fd: number) => void): void {
  const call = r.remote.call.bind(r.remote);
  r.scratch.reset();
  const pidfd = Number(call('pidfd_open', [r.restorerPid, 0], 'pidfd of the restorer'));
  try {
    const fd = Number(call('pidfd_getfd', [pidfd, ours, 0], 'terminal fd into the task'));
    try {
      fn(fd);
    } finally {
      call('close', [fd]);
    }
  } finally {
    call('close', [pidfd]);
  }
}
