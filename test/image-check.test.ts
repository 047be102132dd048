// Images are checked before anything is created: cryo's manifest (missing, truncated, altered,
// added files) and the graph checks every image gets, on copies of CRIU's reference images
// damaged in the ways a tester found restoring "successfully" before. No process is involved:
// readCheckpoint is what restore runs first.
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { after, describe, test } from 'node:test';
import { create } from '@bufbuild/protobuf';
import { ImageDirReader, ImageDirWriter } from '../src/image/dir.js';
import { encodeImage } from '../src/image/io.js';
import { verifyManifest, MANIFEST_FILE } from '../src/image/manifest.js';
import { mm_entrySchema } from '../src/image/gen/mm_pb.js';
import { pstree_entrySchema, type pstree_entry } from '../src/image/gen/pstree_pb.js';
import { inventory_entrySchema } from '../src/image/gen/inventory_pb.js';
import { readCheckpoint } from '../src/restore/images.js';
import { VMA } from '../src/resources/mm/vma-kind.js';
import { FIXTURES } from './lib/build.js';

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'cryo-imgcheck-'));
after(() => fs.rmSync(tmp, { recursive: true, force: true }));
let n = 0;
const haveFixtures = fs.existsSync(path.join(FIXTURES, 'tree'));

function copyFixture(name: string): string {
  const d = path.join(tmp, `${name}-${++n}`);
  fs.cpSync(path.join(FIXTURES, name), d, { recursive: true });
  return d;
}

function pstreeOf(dir: string): pstree_entry[] {
  return ImageDirReader.open(dir).readAs('pstree.img', pstree_entrySchema);
}

function writePstree(dir: string, entries: pstree_entry[]): void {
  fs.writeFileSync(path.join(dir, 'pstree.img'), encodeImage('PSTREE', entries));
}

function refused(dir: string, pattern: RegExp, opts: { shellJob?: boolean } = {}): void {
  assert.throws(() => readCheckpoint(dir, opts), (e: Error) => {
    assert.match(e.message, pattern);
    assert.ok(!e.message.includes('\n'), `one line: ${e.message}`);
    return true;
  });
}

describe('graph checks on CRIU images (no manifest)', { skip: !haveFixtures && 'no fixtures' }, () => {
  test('the pristine reference images pass', () => {
    for (const name of ['simple-sleep', 'threads', 'tree', 'py-threads-pipe-socket']) readCheckpoint(copyFixture(name));
  });

  test('pstree.img cut after its first entry is named (the children have images)', () => {
    const d = copyFixture('tree');
    const [root] = pstreeOf(d);
    writePstree(d, [root!]);
    refused(d, /core-\d+\.img: task \d+ is not in pstree\.img \(pstree\.img damaged or cut short\?\)/);
  });

  test('a PID twice, a task that is not its own thread', () => {
    const d = copyFixture('tree');
    const t = pstreeOf(d);
    t[2]!.pid = t[1]!.pid;
    t[2]!.threads = [t[1]!.pid];
    writePstree(d, t);
    refused(d, /pstree\.img: PID \d+ appears twice/);
    const e = copyFixture('simple-sleep');
    const s = pstreeOf(e);
    s[0]!.threads = [s[0]!.pid + 1];
    writePstree(e, s);
    refused(e, /is not among its own threads/);
  });

  test('a root in session 1 needs --shell-job; a child in session 1 is refused (PID 1 is alive)', () => {
    const d = copyFixture('simple-sleep');
    const t = pstreeOf(d);
    t[0]!.sid = 1;
    t[0]!.pgid = 1;
    writePstree(d, t);
    refused(d, /the root task \d+ is in session 1, led from outside the images — restore with --shell-job/);
    readCheckpoint(d, { shellJob: true });
    const c = copyFixture('tree');
    const k = pstreeOf(c);
    k[1]!.sid = 1;
    k[1]!.pgid = k[1]!.pid;
    writePstree(c, k);
    refused(c, /task \d+ is in session 1, whose leader must be re-created, but PID 1 is held by a live process 1/);
  });

  test('a changed process group of a session leader is impossible, and named', () => {
    const d = copyFixture('simple-sleep');
    const t = pstreeOf(d);
    t[0]!.pgid = t[0]!.pid + 7;
    writePstree(d, t);
    refused(d, /leads session \d+ but is in process group \d+ — impossible/);
  });

  test('a corrupted VMA status, overlapping VMAs, a missing vdso', () => {
    const mutate = (edit: (vmas: ReturnType<typeof mmOf>['vmas']) => void, pattern: RegExp) => {
      const d = copyFixture('simple-sleep');
      const file = fs.readdirSync(d).find((f) => f.startsWith('mm-'))!;
      const mm = mmOf(d, file);
      edit(mm.vmas);
      fs.writeFileSync(path.join(d, file), encodeImage('MM', [mm]));
      refused(d, pattern);
    };
    mutate((v) => (v[3]!.status ^= VMA.AREA_REGULAR), /VMA 0x[0-9a-f]+-0x[0-9a-f]+: VMA status 0x[0-9a-f]+ is not one cryo restores/);
    mutate((v) => (v[3]!.status |= VMA.AREA_VDSO), /VMA status|2 vdso VMAs/);
    mutate((v) => (v[4]!.start = v[3]!.start), /overlaps the VMA before it/);
    mutate((v) => v.splice(v.findIndex((x) => x.status & VMA.AREA_VDSO), 1), /no vdso VMA|not inside a private VMA/);
    mutate((v) => (v[2]!.flags ^= 0x3), /disagree with its status/);
  });

  test('a pages file shorter than its pagemap promises', () => {
    const d = copyFixture('simple-sleep');
    const pages = path.join(d, fs.readdirSync(d).find((f) => /^pages-\d+\.img$/.test(f))!);
    fs.truncateSync(pages, fs.statSync(pages).size - 4096);
    refused(d, /pages-\d+\.img: \d+ bytes, but pagemap-\d+\.img lists \d+ pages/);
  });

  test('files.img with a file id twice, an fd whose file is gone', () => {
    const d = copyFixture('simple-sleep');
    const r = ImageDirReader.open(d);
    const files = r.read('files.img');
    fs.writeFileSync(path.join(d, 'files.img'), encodeImage('FILES', [...files, files[0]!]));
    refused(d, /files\.img: file id \d+ appears twice/);
    const e = copyFixture('simple-sleep');
    const fdinfo = fs.readdirSync(e).find((f) => f.startsWith('fdinfo-'))!;
    const fds = ImageDirReader.open(e).read(fdinfo) as unknown as { id: number }[];
    fds[0]!.id = 99999;
    fs.writeFileSync(path.join(e, fdinfo), encodeImage('FDINFO', fds as never));
    refused(e, new RegExp(`${fdinfo}: fd \\d+ refers to file id 99999, missing from files\\.img`));
  });
});

function mmOf(dir: string, file: string) {
  return ImageDirReader.open(dir).readAs(file, mm_entrySchema)[0]!;
}

describe('cryo-manifest.json', () => {
  function written(hashRaw = false): string {
    const d = path.join(tmp, `w-${++n}`);
    const w = ImageDirWriter.create(d, { fsync: false, hashRaw });
    w.writeImage('pstree.img', 'PSTREE', [create(pstree_entrySchema, { pid: 5, ppid: 0, pgid: 5, sid: 5, threads: [5] })]);
    w.writeRaw('pipes-data.img', Buffer.from('raw bytes'));
    const s = w.openRaw('pages-1.img');
    s.write(Buffer.alloc(8192, 1));
    s.close();
    w.noteExternal({ sessions: [77], groups: [] });
    w.finish(create(inventory_entrySchema, { imgVersion: 2 }));
    return d;
  }

  test('lists every file with its size; metadata by sha256, pages by size (crc32 when asked)', () => {
    const d = written();
    const m = verifyManifest(d, 'inventory.img')!;
    assert.deepEqual(Object.keys(m.files), ['inventory.img', 'pages-1.img', 'pipes-data.img', 'pstree.img']);
    assert.match(m.files['pstree.img']!.sha256!, /^[0-9a-f]{64}$/);
    assert.deepEqual(m.files['pages-1.img'], { size: 8192 });
    assert.deepEqual(m.external, { sessions: [77], groups: [] });
    const hashed = verifyManifest(written(true), 'inventory.img')!;
    assert.equal(typeof hashed.files['pages-1.img']!.crc32, 'number');
    const flipped = written(true);
    const pages = path.join(flipped, 'pages-1.img');
    const b = fs.readFileSync(pages);
    b[4000] ^= 1;
    fs.writeFileSync(pages, b);
    assert.throws(() => verifyManifest(flipped, 'inventory.img'), /pages-1\.img: altered: its crc32/);
  });

  test('missing, truncated, altered and added files are named; CRIU dirs have none', () => {
    const cases: [string, (d: string) => void, RegExp][] = [
      ['deleted', (d) => fs.rmSync(path.join(d, 'pipes-data.img')), /pipes-data\.img: missing: the checkpoint had it/],
      ['truncated', (d) => fs.truncateSync(path.join(d, 'pages-1.img'), 4096), /pages-1\.img: 4096 bytes, the checkpoint wrote 8192/],
      ['altered', (d) => fs.writeFileSync(path.join(d, 'pipes-data.img'), 'raw bytez'), /pipes-data\.img: altered: its sha256/],
      ['added', (d) => fs.writeFileSync(path.join(d, 'sk-queues.img'), ''), /sk-queues\.img: not part of the checkpoint/],
      ['inventory altered', (d) => {
        const f = path.join(d, 'inventory.img');
        const bytes = fs.readFileSync(f);
        bytes[bytes.length - 1] ^= 1;
        fs.writeFileSync(f, bytes);
      }, /inventory\.img: altered: its sha256/],
      ['manifest cut', (d) => fs.truncateSync(path.join(d, MANIFEST_FILE), 20), /cryo-manifest\.json: damaged: not valid JSON/],
    ];
    for (const [, damage, pattern] of cases) {
      const d = written();
      damage(d);
      assert.throws(() => verifyManifest(d, 'inventory.img'), pattern);
    }
    const d = written();
    fs.writeFileSync(path.join(d, 'restore.log'), 'a log beside the images is fine');
    assert.ok(verifyManifest(d, 'inventory.img'));
    if (haveFixtures) assert.equal(verifyManifest(path.join(FIXTURES, 'tree'), 'inventory.img'), null);
  });

  test('files reserved ahead (a dump\'s tcp-stream images, before the freeze): written ones kept, the rest gone at finish and at abort', () => {
    const d = path.join(tmp, `w-${++n}`);
    const w = ImageDirWriter.create(d, { fsync: false });
    w.reserve(['tcp-stream-1.img', 'tcp-stream-2.img']);
    assert.deepEqual(fs.readdirSync(d).sort(), ['tcp-stream-1.img', 'tcp-stream-2.img'], 'created at once, empty');
    assert.throws(() => w.reserve(['tcp-stream-1.img']), /written twice/);
    w.writeRaw('tcp-stream-1.img', Buffer.from('stream'));
    assert.throws(() => w.writeRaw('tcp-stream-1.img', Buffer.from('again')), /written twice/);
    w.finish(create(inventory_entrySchema, { imgVersion: 2 }));
    assert.deepEqual(fs.readdirSync(d).sort(), [MANIFEST_FILE, 'inventory.img', 'tcp-stream-1.img'], 'the one never written is gone');
    assert.deepEqual(Object.keys(verifyManifest(d, 'inventory.img')!.files).sort(), ['inventory.img', 'tcp-stream-1.img']);
    assert.equal(fs.readFileSync(path.join(d, 'tcp-stream-1.img'), 'utf8'), 'stream');
    const a = path.join(tmp, `w-${++n}`);
    const wa = ImageDirWriter.create(a, { fsync: false });
    wa.reserve(['tcp-stream-3.img']);
    wa.abort();
    assert.equal(fs.existsSync(a), false, 'abort removes reserved files with the directory');
  });
});
