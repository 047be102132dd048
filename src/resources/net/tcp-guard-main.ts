// The TCP guard's own program (see tcp-guard.ts): `node tcp-guard-main.js`, started by a dump,
// commands on stdin, one answer line each on stdout. It never touches the tree while cryo lives;
// it acts only when its stdin closes without "done" (cryo died).
import { sleepMs } from '../../util/sleep.js';
import { readFileSync } from 'node:fs';
import { pidfdOpen, pidfdGetfd, closeFd, getsockoptInt, SOL, SO, tcpRepairOn, serveGuard } from '../../sys/index.js';
import { parseStat } from '../../proc/stat.js';
import { releaseRepair } from './tcp-repair.js';
import { removeLock } from './netlock.js';

const copies: { fd: number; reuseaddr: boolean }[] = [];
const tree: { pid: number; start: string }[] = [];
let lock: { mode: 'nftables' | 'iptables'; name: string } | null = null;
let complete = false;

function alive(p: { pid: number; start: string }): boolean {
  try {
    const st = parseStat(readFileSync(`/proc/${p.pid}/stat`, 'utf8'));
    return st.startTime.toString() === p.start && st.state !== 'Z' && st.state !== 'X';
  } catch {
    return false;
  }
}

/** cryo died: put back what it left, unless its dump was complete and its tree is gone. */
function cleanUp(): void {
  if (complete) {
    // A kill-dump's tasks may still be dying from cryo's SIGKILL.
    for (let i = 0; i < 200 && tree.some(alive); i++) sleepMs(10);
    if (!tree.some(alive)) return; // the restore adopts the lock; our copies close silently
  }
  for (const c of copies) if (tcpRepairOnSafe(c.fd)) releaseRepair(c.fd, c.reuseaddr);
  if (lock) {
    try {
      removeLock(lock.mode, lock.name);
    } catch {
      /* nothing more to do: the next dump's sweep finds it */
    }
  }
}

function tcpRepairOnSafe(fd: number): boolean {
  try {
    return tcpRepairOn(fd);
  } catch {
    return false;
  }
}

function command(cmd: string, args: string[]): boolean {
  if (cmd === 'tree') {
    for (const a of args) {
      const [pid, start] = a.split(':');
      tree.push({ pid: Number(pid), start: start! });
    }
  } else if (cmd === 'take') {
    for (const a of args) {
      const [pid, fd] = a.split(':').map(Number);
      const pidfd = pidfdOpen(pid!);
      try {
        const ours = pidfdGetfd(pidfd, fd!);
        copies.push({ fd: ours, reuseaddr: getsockoptInt(ours, SOL.SOCKET, SO.REUSEADDR) !== 0 });
      } finally {
        closeFd(pidfd);
      }
    }
  } else if (cmd === 'lock') {
    lock = { mode: args[0] as 'nftables' | 'iptables', name: args[1]! };
  } else if (cmd === 'complete') {
    complete = true;
  } else if (cmd === 'done') {
    for (const c of copies.splice(0)) closeFd(c.fd);
    return false;
  } else {
    throw new Error(`unknown command ${cmd}`);
  }
  return true;
}

await serveGuard(command, cleanUp);
