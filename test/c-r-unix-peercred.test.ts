// The peer credentials of unix connections (SO_PEERCRED, SO_PEERGROUPS), which servers read to
// decide what a client may do: a root server with a client that dropped to nobody (and other
// groups) before it connected (one connection accepted, one still waiting in the listener's
// queue), and a socketpair made by that client. After the restore each end
// shows the same user, group and groups as before — not the restorer's root. (The peer pid is
// the restorer's: credentials are per thread, a pid is not.)
import { after, describe, it } from 'node:test';
import { checkRestore, cleanupTrees, dumpAndKill, expectPass, readyPython, restore } from './lib/index.js';

after(cleanupTrees);

const SCRIPT = [
  'import os, socket, struct, time, sys',
  'U = socket.AF_UNIX',
  'def cred(s):',
  '    _, uid, gid = struct.unpack("3i", s.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, 12))',
  '    raw = s.getsockopt(socket.SOL_SOCKET, 59, 1024)',
  '    return uid, gid, sorted(struct.unpack(f"{len(raw) // 4}I", raw))',
  'd = os.getcwd()',
  'name = b"\\0cryo-t-peercred-" + str(os.getpid()).encode()',
  'srv = socket.socket(U, socket.SOCK_STREAM); srv.bind(name); srv.listen(4)',
  'os.chmod(os.path.dirname(d), 0o755); os.chmod(d, 0o777)  # for the child to reach the path below',
  'srvp = socket.socket(U, socket.SOCK_STREAM); srvp.bind(d + "/srv"); os.chmod(d + "/srv", 0o777); srvp.listen(4)',
  'root = cred(srv)',
  'r, w = os.pipe(); r2, w2 = os.pipe()',
  'kid = os.fork()',
  'if kid == 0:',
  '    os.close(r)',
  '    os.setgroups([1234, 5678]); os.setresgid(65534, 65534, 65534); os.setresuid(65534, 65534, 65534)',
  '    cl = socket.socket(U, socket.SOCK_STREAM); cl.connect(name)',
  '    pa, pb = socket.socketpair(U, socket.SOCK_SEQPACKET)',
  '    cl2 = socket.socket(U, socket.SOCK_STREAM); cl2.connect(name)  # left waiting in the accept queue',
  '    clp = socket.socket(U, socket.SOCK_STREAM); clp.connect(d + "/srv")',
  '    before = [cred(cl), cred(pa), cred(pb), cred(clp)]',
  '    os.write(w, b"x")',
  '    os.read(r2, 1)  # the parent says when: its working directory is not the child\'s to reach',
  '    now = [cred(cl), cred(pa), cred(pb), cred(clp)]',
  '    print("child: ok" if now == before else f"child: FAIL {now} != {before}", flush=True)',
  '    os._exit(0 if now == before else 1)',
  'os.close(w); os.read(r, 1)',
  'acc, _ = srv.accept()',
  'before = cred(acc)',
  'accp, _ = srvp.accept()',
  'assert before == (65534, 65534, [1234, 5678]), before',
  'print("READY", flush=True)',
  'while not os.path.exists("go"): time.sleep(0.01)',
  'bad = []',
  'os.write(w2, b"x")',
  'if cred(acc) != before: bad.append(f"accepted end: {cred(acc)}, expected {before}")',
  'if cred(accp) != before or accp.getsockname() != d + "/srv": bad.append(f"accepted from a path: {cred(accp)} at {accp.getsockname()!r}")',
  'late, _ = srv.accept()',
  'if cred(late) != before: bad.append(f"a connection accepted after the restore: {cred(late)}, expected {before}")',
  '_, st = os.waitpid(kid, 0)',
  'if st != 0: bad.append(f"the client saw other credentials (status {st})")',
  'print("PASS" if not bad else "FAIL: " + "; ".join(bad), flush=True)',
];

describe('unix peer credentials', () => {
  it('a client that dropped to nobody and its server keep each other’s credentials', { timeout: 90_000 }, async () => {
    const { t } = await readyPython('peercred', SCRIPT);
    const { dir } = await dumpAndKill(t, [t.pid]);
    checkRestore(t, restore(t, dir, '1'));
    await expectPass(t);
  });
});
