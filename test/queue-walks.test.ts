// Walks of a datagram queue holding empty messages, on sockets of the test's own, as a dump
// walks a task's (resources/files/queue-walks.ts, peeked-marks.ts): the kernel hides an empty
// message from every later peek at an offset once a walk returned it, so a second walk, in the
// same scan or in a later cryo run (through the note the first one left), must still list it,
// in its place, also when the program read some of the queue and more came in between.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, describe, it } from 'node:test';

const notes = fs.mkdtempSync(path.join(os.tmpdir(), 'cryo-peeked-'));
process.env.CRYO_PEEKED_DIR = notes;
after(() => fs.rmSync(notes, { recursive: true, force: true }));

const { socketpair, send, sys, SOCK, TCP_STATE } = await import('../src/sys/index.js');
const { QueueWalks } = await import('../src/resources/files/queue-walks.js');

type Diag = Parameters<InstanceType<typeof QueueWalks>['walk']>[0];

function pair() {
  const [a, b] = socketpair(SOCK.DGRAM);
  const d = { ino: 1, type: SOCK.DGRAM, state: TCP_STATE.ESTABLISHED, name: Buffer.alloc(0), peer: 0, icons: [], rqueue: 0, wqueue: 0, shutdown: 0 } as Diag;
  return { a, b, d, close: () => [a, b].forEach((f) => sys('close', [f])) };
}

const walk = (d: Diag, fd: number) => new QueueWalks(true).walk(d, fd, 4096)!.map((m) => m.data.toString());
const take = (fd: number) => {
  const buf = Buffer.alloc(4096);
  return buf.subarray(0, sys('recvfrom', [fd, buf, buf.length, 0x40, 0, 0], 'recv')).toString();
};

describe('queue walks and empty datagrams', () => {
  it('a second scan sees the empty messages the first one marked peeked', () => {
    const s = pair();
    try {
      for (const m of ['a', '', '', 'b']) send(s.a, Buffer.from(m));
      assert.deepEqual(walk(s.d, s.b), ['a', '', '', 'b']);
      assert.deepEqual(walk(s.d, s.b), ['a', '', '', 'b']);
    } finally {
      s.close();
    }
  });

  it('the program read some and more came between the walks: the hidden ones still queued come back, the read ones do not', () => {
    const s = pair();
    try {
      for (const m of ['a', '', 'b', '', 'c']) send(s.a, Buffer.from(m));
      assert.deepEqual(walk(s.d, s.b), ['a', '', 'b', '', 'c']);
      assert.equal(take(s.b), 'a');
      send(s.a, Buffer.from('d'));
      assert.deepEqual(walk(s.d, s.b), ['', 'b', '', 'c', 'd']);
      assert.equal(take(s.b), '');
      assert.equal(take(s.b), 'b');
      send(s.a, Buffer.from(''));
      assert.deepEqual(walk(s.d, s.b), ['', 'c', 'd', '']);
      for (const m of ['', 'c', 'd', '']) assert.equal(take(s.b), m);
      assert.deepEqual(walk(s.d, s.b), []);
    } finally {
      s.close();
    }
  });
});
