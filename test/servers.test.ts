// Real servers from Debian's packages through checkpoint/restore, each started as its own package
// starts it (foreground) and asked afterwards, over its own protocol, for state that only survives
// in its memory: PostgreSQL (a postmaster and its helpers sharing memory; an unlogged table, which
// a restart after a crash would have emptied), nginx (a master and two workers; a reload after the
// restore), memcached (threads, keys only in memory) and a JVM (its threads go on counting).
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as path from 'node:path';
import { spawnSync } from 'node:child_process';
import { after, before, describe, it } from 'node:test';
import {
  cleanupTrees, checkRestore, descendants, dumpAndKill, family, freePort, makeTempDir, restore, startTarget, waitFor,
  waitForLine, cryo, cryoReport, readCmdline, type Target,
} from './lib/index.js';

after(cleanupTrees);

/** `cryo check -t PID` approves the target (once the server has closed our clients' connections). */
async function assertCheckpointable(t: Target): Promise<void> {
  let last = cryo(['check', '-t', String(t.pid)]);
  const ok = await waitFor(() => (last = cryo(['check', '-t', String(t.pid)])).code === 0, 10_000, 200);
  assert.ok(ok, `cryo check -t ${t.pid} keeps refusing\n${cryoReport(last)}`);
}

function pids(root: number): number[] {
  return family(root).map((r) => r.pid).sort((a, b) => a - b);
}

/** The newest PostgreSQL server binaries Debian installed (/usr/lib/postgresql/VERSION/bin). */
function postgresBin(): string {
  const base = '/usr/lib/postgresql';
  const versions = fs.readdirSync(base).filter((v) => fs.existsSync(path.join(base, v, 'bin', 'postgres')));
  assert.ok(versions.length, `no PostgreSQL server under ${base}`);
  return path.join(base, versions.sort((a, b) => Number(a) - Number(b)).at(-1)!, 'bin');
}

/**
 * One request/response exchange on a new TCP connection: the answer is whole when `done` says so,
 * or, without `done`, when the server closes the connection.
 */
function exchange(port: number, request: string, done?: (answer: string) => boolean): Promise<string> {
  return new Promise((resolve, reject) => {
    const s = net.connect(port, '127.0.0.1');
    let answer = '';
    const timer = setTimeout(() => s.destroy(new Error(`no whole answer on port ${port}: ${JSON.stringify(answer)}`)), 10_000);
    const finish = (): void => {
      clearTimeout(timer);
      s.end();
      resolve(answer);
    };
    s.setEncoding('utf8');
    s.on('connect', () => s.write(request));
    s.on('data', (c: string) => {
      answer += c;
      if (done?.(answer)) finish();
    });
    s.on('end', () => (done ? s.destroy(new Error(`port ${port} closed before a whole answer: ${JSON.stringify(answer)}`)) : finish()));
    s.on('error', (e) => {
      clearTimeout(timer);
      reject(e);
    });
  });
}

/** The postgres account's uid or gid (Debian's package creates it). */
function pgUser(which: 'uid' | 'gid'): number {
  const r = spawnSync('id', [which === 'uid' ? '-u' : '-g', 'postgres'], { encoding: 'utf8' });
  assert.equal(r.status, 0, `no postgres account: ${r.stderr}`);
  return Number(r.stdout.trim());
}

describe('PostgreSQL', () => {
  let template = '';
  let bin = '';
  before(() => {
    bin = postgresBin();
    // initdb once (seconds); each server starts from a copy of this cluster inside its own target dir.
    template = makeTempDir('cryo-pg-template-');
    fs.chmodSync(template, 0o755);
    fs.chownSync(template, pgUser('uid'), pgUser('gid'));
    const r = spawnSync('setpriv', ['--reuid=postgres', '--regid=postgres', '--init-groups', path.join(bin, 'initdb'), '-D',
      path.join(template, 'data'), '-A', 'trust', '-U', 'postgres', '--no-sync'], { encoding: 'utf8', timeout: 120_000 });
    assert.equal(r.status, 0, `initdb failed: ${r.stdout}${r.stderr}${r.error ?? ''}`);
  });

  it('a postmaster and its helpers: same processes, same start time, an unlogged table kept, CHECKPOINT and new sessions work', async () => {
    const port = await freePort();
    const script = [
      'chmod 755 .. . && cp -a "$1" data && mkdir sock && chown postgres: sock',
      `exec setpriv --reuid=postgres --regid=postgres --init-groups "${bin}/postgres" -D "$PWD/data" -k "$PWD/sock" -p ${port}` +
        ' -c listen_addresses=127.0.0.1 -c autovacuum=off -c shared_buffers=32MB -c fsync=off',
    ].join(' && ');
    const t = await startTarget(['/bin/sh', '-c', script, 'sh', path.join(template, 'data')], { name: 'postgres', execs: path.join(bin, 'postgres') });
    assert.ok(await waitFor(() => /ready to accept connections/.test(t.log()), 30_000), `postgres did not start\n${t.log()}`);
    const sql = (q: string, host = path.join(t.dir, 'sock')): string => {
      const r = spawnSync('psql', ['-h', host, '-p', String(port), '-U', 'postgres', '-At', '-v', 'ON_ERROR_STOP=1', '-c', q],
        { encoding: 'utf8', timeout: 20_000 });
      assert.equal(r.status, 0, `psql -c ${q}: ${r.stderr}${r.error ?? ''}`);
      return r.stdout.trim();
    };
    sql('CREATE UNLOGGED TABLE kept (n int PRIMARY KEY, v text)');
    sql("INSERT INTO kept SELECT g, 'row ' || g FROM generate_series(1, 20000) g");
    const started = sql('SELECT pg_postmaster_start_time()');
    // The last psql's backend ("postgres: postgres postgres [local] ...") may still be exiting
    // after psql returned: the list is taken once only the postmaster's helpers are left.
    const backends = () => family(t.pid).filter((r) => (readCmdline(r.pid) ?? []).join(' ').includes('[local]'));
    assert.ok(await waitFor(() => backends().length === 0, 10_000), `backends outlived their psql: ${JSON.stringify(backends())}`);
    const before = pids(t.pid);
    assert.ok(before.length >= 4, `the postmaster and its helpers: ${JSON.stringify(family(t.pid))}`);
    descendants(t.pid);
    await assertCheckpointable(t);
    const { dir } = await dumpAndKill(t, before);
    checkRestore(t, restore(t, dir, '1'));
    assert.deepEqual(pids(t.pid), before, 'the same postmaster helpers');
    assert.equal(sql('SELECT pg_postmaster_start_time()'), started, 'the same server, not a restart');
    // A restart after the SIGKILL of the dump would have run crash recovery, which empties unlogged tables.
    assert.equal(sql("SELECT count(*) || ' ' || max(v) FROM kept"), '20000 row 9999');
    sql('CHECKPOINT');
    sql("INSERT INTO kept VALUES (20001, 'after')");
    assert.equal(sql('SELECT v FROM kept WHERE n = 20001', '127.0.0.1'), 'after', 'a TCP session to the restored listener');
  });
});

/** A script for `sh -c` that writes FILE with TEXT in the target's dir, then runs what follows. */
function writing(file: string, text: string): string {
  return `printf '%s' '${text.replace(/'/g, `'\\''`)}' > ${file}`;
}

describe('nginx', () => {
  it('a master and two workers serve, and reload on SIGHUP after the restore', async () => {
    const port = await freePort();
    const conf = [
      'worker_processes 2; pid nginx.pid; error_log error.log;',
      'events { worker_connections 64; }',
      `http { access_log access.log; server { listen 127.0.0.1:${port}; root html; location = /pid { return 200 "$pid"; } } }`,
    ].join('\n');
    const script = `chmod 755 .. . && ${writing('nginx.conf', conf)} && mkdir html logs && echo served > html/index.html && exec /usr/sbin/nginx -p "$PWD/" -c nginx.conf -g 'daemon off;'`;
    const t = await startTarget(['/bin/sh', '-c', script], { name: 'nginx', execs: '/usr/sbin/nginx' });
    assert.ok(await waitFor(() => family(t.pid).length === 3, 10_000), `nginx did not start its workers\n${t.log()}`);
    const get = (p: string): Promise<string> => exchange(port, `GET ${p} HTTP/1.0\r\n\r\n`);
    assert.match(await get('/'), /^HTTP\/1\.1 200[^]*\r\n\r\nserved\n$/);
    const before = pids(t.pid);
    descendants(t.pid);
    await assertCheckpointable(t);
    const { dir } = await dumpAndKill(t, before);
    checkRestore(t, restore(t, dir, '1'));
    assert.deepEqual(pids(t.pid), before, 'the same master and workers');
    assert.match(await get('/'), /\r\n\r\nserved\n$/);
    const worker = Number(/\r\n\r\n(\d+)$/.exec(await get('/pid'))![1]);
    assert.ok(before.includes(worker) && worker !== t.pid, `a restored worker answered (${worker})`);
    // A reload: the master reads its configuration again, forks two new workers, retires the old ones.
    process.kill(t.pid, 'SIGHUP');
    assert.ok(await waitFor(() => {
      const now = pids(t.pid);
      return now.length === 3 && now.filter((p) => p !== t.pid).every((p) => !before.includes(p));
    }, 10_000), `no new workers after SIGHUP: ${JSON.stringify(family(t.pid))}\n${fs.readFileSync(path.join(t.dir, 'error.log'), 'utf8')}`);
    descendants(t.pid);
    assert.match(await get('/'), /\r\n\r\nserved\n$/);
  });
});

describe('memcached', () => {
  it('four worker threads: keys held only in memory, its uptime going on, new connections served', async () => {
    const port = await freePort();
    const t = await startTarget(['/usr/bin/memcached', '-u', 'root', '-l', '127.0.0.1', '-p', String(port), '-U', '0', '-t', '4', '-m', '64'],
      { name: 'memcached' });
    const ask = async (request: string, end: RegExp): Promise<string> => {
      for (let i = 0; ; i++) {
        try {
          return await exchange(port, request, (a) => end.test(a));
        } catch (e) {
          if (i >= 50 || !/ECONNREFUSED/.test(String(e))) throw e;
          await new Promise((r) => setTimeout(r, 100)); // not listening yet
        }
      }
    };
    const sets = Array.from({ length: 500 }, (_, i) => `set key${i} ${i} 0 ${String(i * i).length}\r\n${i * i}\r\n`).join('');
    assert.equal((await ask(sets, /(STORED\r\n){500}$/)).length, 'STORED\r\n'.length * 500);
    const stat = async (name: string): Promise<number> => Number(new RegExp(`STAT ${name} (\\d+)`).exec(await ask('stats\r\n', /END\r\n$/))![1]);
    const uptime = await stat('uptime');
    const threads = fs.readdirSync(`/proc/${t.pid}/task`).length;
    assert.ok(threads >= 5, `memcached's threads: ${threads}`);
    await assertCheckpointable(t);
    const { dir } = await dumpAndKill(t, [t.pid]);
    checkRestore(t, restore(t, dir, '1'));
    assert.equal(fs.readdirSync(`/proc/${t.pid}/task`).length, threads, 'the same threads');
    assert.equal(await ask('get key7 key499\r\n', /END\r\n$/), `VALUE key7 7 2\r\n49\r\nVALUE key499 499 6\r\n249001\r\nEND\r\n`);
    assert.ok((await stat('uptime')) >= uptime, 'its clock goes on from where it was');
    assert.equal(await stat('curr_items'), 500);
    assert.equal(await ask('incr key9 1\r\n', /\r\n$/), '82\r\n');
  });
});

describe('JVM', () => {
  it('a Java program: its threads go on counting, its heap kept', async () => {
    const src = makeTempDir('cryo-java-');
    fs.writeFileSync(path.join(src, 'Count.java'), [
      'import java.nio.file.*; import java.util.*; import java.util.concurrent.atomic.*;',
      'public class Count {',
      '  public static void main(String[] a) throws Exception {',
      '    AtomicLong n = new AtomicLong(); HashMap<Integer, String> m = new HashMap<>();',
      '    for (int i = 0; i < 200000; i++) m.put(i, "v" + i);',
      '    for (int t = 0; t < 4; t++) { Thread th = new Thread(() -> { for (;;) { n.incrementAndGet();',
      '      try { Thread.sleep(1); } catch (InterruptedException e) { return; } } }); th.setDaemon(true); th.start(); }',
      '    System.out.println("READY"); System.out.flush();',
      '    for (;;) { Files.writeString(Path.of("count.tmp"), n.get() + " " + m.get(199999) + " " + m.size());',
      '      Files.move(Path.of("count.tmp"), Path.of("count"), StandardCopyOption.ATOMIC_MOVE); Thread.sleep(50); }',
      '  }',
      '}',
    ].join('\n'));
    const javac = spawnSync('javac', ['-d', src, path.join(src, 'Count.java')], { encoding: 'utf8', timeout: 120_000 });
    assert.equal(javac.status, 0, `javac: ${javac.stderr}${javac.error ?? ''}`);
    const t = await startTarget(['/usr/bin/java', '-Xmx128m', '-cp', src, 'Count'], { name: 'java' });
    await waitForLine(t, 'READY', 30_000);
    const count = (): [number, string] => {
      const [n, v, size] = fs.readFileSync(path.join(t.dir, 'count'), 'utf8').split(' ');
      return [Number(n), `${v} ${size}`];
    };
    assert.ok(await waitFor(() => fs.existsSync(path.join(t.dir, 'count')), 10_000));
    await assertCheckpointable(t);
    const { dir } = await dumpAndKill(t, [t.pid]);
    const [atDump, heap] = count();
    assert.equal(heap, 'v199999 200000');
    checkRestore(t, restore(t, dir, '1'));
    assert.ok(await waitFor(() => count()[0] > atDump + 100, 10_000), `the counter stays at ${count()[0]} (dumped at ${atDump})`);
    assert.equal(count()[1], heap, 'the same map in its heap');
  });
});
