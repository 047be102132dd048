// Helpers of the TCP repair tests (tcp-repair*.test.ts): the stream pattern tcpconn.c writes,
// records through crit-checked images, driving connections to their end, a lossy wire.
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { spawnSync } from 'node:child_process';
import { create } from '@bufbuild/protobuf';
import { critDecodeAll, makeTempDir, waitForLine, sleep, type Target } from './index.js';
import { SOL, TCP_OPT, F, O, E, sys, sysTry, setsockoptInt, shutdown } from '../../src/sys/index.js';
import { encodeImage, decodeImage } from '../../src/image/io.js';
import { inet_sk_entrySchema, type inet_sk_entry } from '../../src/image/gen/sk-inet_pb.js';
import { encodeTcpStreamImage, decodeTcpStreamImage, type TcpConnectionRecord } from '../../src/resources/net/tcp-repair.js';

export const EXTRA = 100000; // as in tcpconn.c

/** Byte i of stream direction d (0 client->server, 1 server->client), as tcpconn.c makes it. */
export function pattern(i: number, d: number): number {
  return ((Math.imul(i, 0x9e3779b1) >>> 24) ^ (i >>> 8) ^ (d * 0x5a)) & 0xff;
}

export function patternBuf(from: number, len: number, d: number): Buffer {
  const b = Buffer.alloc(len);
  for (let k = 0; k < len; k++) b[k] = pattern(from + k, d);
  return b;
}

export function firstMismatch(b: Buffer, from: number, d: number): number {
  for (let k = 0; k < b.length; k++) if (b[k] !== pattern(from + k, d)) return k;
  return -1;
}

export function field(line: string, name: string): number {
  const m = new RegExp(`${name}=(\\d+)`).exec(line);
  assert.ok(m, `no ${name}= in "${line}"`);
  return Number(m[1]);
}

/** Record -> inetsk.img + tcp-stream-INO.img (crit must decode both) -> record. */
export async function throughImages(rec: TcpConnectionRecord): Promise<TcpConnectionRecord> {
  const dir = makeTempDir('cryo-tcp-img-');
  const streamFile = `tcp-stream-${rec.sk.ino.toString(16)}.img`;
  fs.writeFileSync(path.join(dir, 'inetsk.img'), encodeImage('INETSK', [create(inet_sk_entrySchema, rec.sk)]));
  fs.writeFileSync(path.join(dir, streamFile), encodeTcpStreamImage(rec));
  const crit = await critDecodeAll(dir);
  const critStream = (crit.get(streamFile) as { entries: Array<Record<string, unknown>> }).entries[0]!;
  assert.equal(critStream.inq_len, rec.stream.inqLen, 'crit reads our inq_len');
  assert.equal(critStream.outq_len, rec.stream.outqLen, 'crit reads our outq_len');
  const sk = decodeImage(fs.readFileSync(path.join(dir, 'inetsk.img')), 'inetsk.img').messages[0] as inet_sk_entry;
  const s = decodeTcpStreamImage(fs.readFileSync(path.join(dir, streamFile)), streamFile);
  assert.ok(s.inq.equals(rec.inq) && s.outq.equals(rec.outq), 'queue bytes survive the image');
  return { sk: sk as unknown as TcpConnectionRecord['sk'], stream: s.stream as unknown as TcpConnectionRecord['stream'], inq: s.inq, outq: s.outq };
}

/** One side of a conversation: write stream bytes [from, to) of direction outDir, read bytes [0, inTo) of inDir, then FIN and EOF. */
export interface End {
  name: string;
  fd: number;
  from: number;
  to: number;
  outDir: number;
  inTo: number;
  inDir: number;
}

/** Drives every end until each has written its part, sent FIN and read its peer's stream to EOF, checking every byte's position. */
export async function converse(ends: End[]): Promise<void> {
  const st = ends.map((e) => {
    sys('fcntl', [e.fd, F.SETFL, O.RDWR | O.NONBLOCK]);
    return { e, out: patternBuf(e.from, e.to - e.from, e.outDir), wrote: 0, got: 0, fin: false, eof: false };
  });
  const inBuf = Buffer.alloc(65536);
  const deadline = Date.now() + 180_000;
  while (st.some((x) => !x.eof)) {
    let progress = false;
    for (const x of st) {
      const { e } = x;
      if (x.wrote < x.out.length) {
        const chunk = x.out.subarray(x.wrote);
        const r = sysTry('write', [e.fd, chunk, chunk.length]);
        if (r.ret > 0) { x.wrote += r.ret; progress = true; } else assert.equal(r.errno, E.EAGAIN, `${e.name}: write: errno ${r.errno}`);
      } else if (!x.fin) {
        shutdown(e.fd, 1, 'SHUT_WR');
        x.fin = true;
      }
      if (x.eof) continue;
      const r = sysTry('read', [e.fd, inBuf, inBuf.length]);
      if (r.ret > 0) {
        const b = inBuf.subarray(0, r.ret);
        const bad = firstMismatch(b, x.got, e.inDir);
        assert.equal(bad, -1, `${e.name}: byte ${x.got + bad} is ${b[bad]}, expected ${pattern(x.got + bad, e.inDir)}`);
        x.got += r.ret;
        progress = true;
      } else if (r.ret === 0) {
        assert.equal(x.got, e.inTo, `${e.name}: EOF after ${x.got} bytes, expected ${e.inTo}`);
        x.eof = true;
      } else assert.equal(r.errno, E.EAGAIN, `${e.name}: read: errno ${r.errno} after ${x.got} bytes`);
    }
    assert.ok(Date.now() < deadline, `no end of the exchange: ${st.map((x) => `${x.e.name} wrote ${x.wrote}/${x.out.length}, read ${x.got}/${x.e.inTo}`).join('; ')}`);
    if (!progress) await sleep(5);
  }
}

/** The target's client would now uncork (the corked 700 bytes go out); then both sides talk. */
export async function talkAndCheck(t: Target, fd: number, c2s: number, s2c: number): Promise<void> {
  setsockoptInt(fd, SOL.TCP, TCP_OPT.CORK, 0);
  fs.writeFileSync(path.join(t.dir, 'go'), '');
  try {
    await converse([{ name: 'client', fd, from: c2s, to: c2s + EXTRA, outDir: 0, inTo: s2c + EXTRA, inDir: 1 }]);
  } catch (e) {
    throw new Error(`${(e as Error).message}\n--- target log ---\n${t.log()}`, { cause: e });
  }
  const res = await waitForLine(t, ['PASS', 'FAIL'], 60_000);
  assert.ok(res.startsWith('PASS'), t.log());
}

/**
 * Drops, on input only, TCP packets from local port `port` (a table of the test's own, not
 * named like cryo's locks); returns its removal.
 */
export function dropArriving(port: number): () => void {
  const name = `cryotest-${process.pid}-${port}`;
  const nft = (args: string[], input?: string) => {
    const r = spawnSync('nft', args, { input, encoding: 'utf8' });
    assert.equal(r.status, 0, `nft ${args.join(' ')}: ${r.stderr}`);
  };
  nft(['-f', '-'], `table inet ${name} { chain input { type filter hook input priority -300; policy accept; tcp sport ${port} drop; }\n}\n`);
  let gone = false;
  return () => {
    if (!gone) nft(['delete', 'table', 'inet', name]);
    gone = true;
  };
}

