// The calling thread's own credentials, changed for a moment. Linux keeps credentials per
// thread and the raw setresuid/setresgid/setgroups syscalls change only the caller's (glibc's
// wrappers would change every thread of cryo). Whatever the kernel records of "current" while
// they are changed carries them: a unix socket's peer credentials (SO_PEERCRED, SO_PEERGROUPS),
// set by socketpair(), listen() and connect(). Only the effective ids change: the filesystem ids
// stay cryo's.
import { sys } from './libc.js';

export interface ThreadCreds {
  uid: number;
  gid: number;
  groups?: number[];
}

/** Runs `fn` with this thread's effective uid, gid and groups set to `c`; cryo's are back after. */
export function asThreadCreds<T>(c: ThreadCreds, fn: () => T): T {
  const ngroups = sys('getgroups', [0, 0]);
  const saved = Buffer.alloc(Math.max(4, ngroups * 4));
  sys('getgroups', [ngroups, saved]);
  const [rgid, egid, sgid] = [Buffer.alloc(4), Buffer.alloc(4), Buffer.alloc(4)];
  sys('getresgid', [rgid, egid, sgid]);
  const uid = sys('geteuid', []);
  // In: groups and gid while this thread may still change them, the uid last.
  if (c.groups) {
    const g = Buffer.alloc(Math.max(4, c.groups.length * 4));
    c.groups.forEach((x, i) => g.writeUInt32LE(x, i * 4));
    sys('setgroups', [c.groups.length, g], 'setgroups for a peer credential');
  }
  sys('setresgid', [-1, c.gid, -1], `setresgid(-1, ${c.gid}, -1)`);
  sys('setresuid', [-1, c.uid, -1], `setresuid(-1, ${c.uid}, -1)`);
  // Paths are still looked up as cryo's (the filesystem ids, and the capabilities that come back
  // with a filesystem uid of 0): a connect to a path the program could reach when it connected
  // (before it dropped privileges, say) is not refused now.
  sys('setfsuid', [uid]);
  sys('setfsgid', [egid.readUInt32LE(0)]);
  try {
    return fn();
  } finally {
    // Out: the uid first (its real and saved ids never changed, so this is allowed), which
    // gives back the capabilities the others need.
    sys('setresuid', [-1, uid, -1], 'setresuid back');
    sys('setresgid', [-1, egid.readUInt32LE(0), -1], 'setresgid back');
    if (c.groups) sys('setgroups', [ngroups, saved], 'setgroups back');
  }
}
