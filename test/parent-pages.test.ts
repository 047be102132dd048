// Incremental images (CRIU's `parent` link and PE_PARENT pagemap entries): a target's memory is
// dumped twice (first with --leave-running), and the second image is made incremental the way
// CRIU writes one: every run of pages equal in both is marked PE_PARENT and its bytes removed
// from the second pages file, which gets a `parent` symlink to the first dump. The restore reads
// those pages from the parent, and the target (test/targets/memory.c) checks its memory itself.
import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { cleanup, cryoReport, dump, readyTarget, restore, goAndWaitResult, waitPidGone, describePid, pidExists } from './lib/index.js';
import { decodeImage, encodeImage } from '../src/image/io.js';
import { pagemapEntryPages, PE_PARENT } from '../src/image/pagemap.js';
import type { pagemap_entry, pagemap_head } from '../src/image/gen/pagemap_pb.js';

after(cleanup);

const PAGE = 4096;

function pagemap(dir: string, pid: number) {
  const msgs = decodeImage(fs.readFileSync(path.join(dir, `pagemap-${pid}.img`))).messages;
  const head = msgs[0] as pagemap_head;
  const pages = fs.readFileSync(path.join(dir, `pages-${head.pagesId}.img`));
  let off = 0;
  const runs = (msgs.slice(1) as pagemap_entry[]).map((e) => {
    const n = Number(pagemapEntryPages(e));
    const r = { e, off, n };
    off += n * PAGE;
    return r;
  });
  return { msgs, head, pages, runs };
}

/** Makes `child` an incremental image over `parent`: returns how many pages now live in the parent. */
function makeIncremental(child: string, parent: string, pid: number): number {
  const p = pagemap(parent, pid);
  const byPage = new Map<bigint, number>();
  for (const r of p.runs) for (let i = 0; i < r.n; i++) byPage.set(r.e.vaddr + BigInt(i * PAGE), r.off + i * PAGE);
  const c = pagemap(child, pid);
  const kept: Buffer[] = [];
  let moved = 0;
  for (const r of c.runs) {
    const mine = c.pages.subarray(r.off, r.off + r.n * PAGE);
    const same = Array.from({ length: r.n }, (_, i) => byPage.get(r.e.vaddr + BigInt(i * PAGE))).every(
      (o, i) => o !== undefined && p.pages.subarray(o, o + PAGE).equals(mine.subarray(i * PAGE, (i + 1) * PAGE)),
    );
    if (same) {
      r.e.flags = PE_PARENT; // CRIU's in-parent entry: no PE_PRESENT, no bytes here
      moved += r.n;
    } else kept.push(mine);
  }
  fs.writeFileSync(path.join(child, `pagemap-${pid}.img`), encodeImage('PAGEMAP', c.msgs), { mode: 0o600 });
  fs.writeFileSync(path.join(child, `pages-${c.head.pagesId}.img`), Buffer.concat(kept), { mode: 0o600 });
  fs.symlinkSync(path.relative(child, parent), path.join(child, 'parent'));
  // No longer the images cryo wrote (CRIU's have no manifest either).
  fs.rmSync(path.join(child, 'cryo-manifest.json'));
  return moved;
}

describe('incremental images (parent link, PE_PARENT)', () => {
  it('pages kept in the parent image are restored from it; without the link the restore is refused', async () => {
    const t = await readyTarget('memory');
    const first = dump(t, 'parent', { leaveRunning: true });
    assert.equal(first.res.code, 0, cryoReport(first.res));
    const second = dump(t, 'child');
    assert.equal(second.res.code, 0, cryoReport(second.res));
    assert.ok(await waitPidGone(t.pid, 10_000), describePid(t.pid));
    const moved = makeIncremental(second.dir, first.dir, t.pid);
    assert.ok(moved >= 16, `only ${moved} pages equal in both dumps`);

    const link = path.join(second.dir, 'parent');
    const target = fs.readlinkSync(link);
    fs.rmSync(link);
    const refused = restore(t, second.dir, 'nolink');
    assert.notEqual(refused.res.code, 0);
    assert.match(refused.res.stderr, /in the parent image, but .* has no parent link/);
    assert.ok(!pidExists(t.pid), describePid(t.pid));
    fs.symlinkSync(target, link);

    const r = restore(t, second.dir, '1');
    assert.equal(r.res.code, 0, cryoReport(r.res));
    const res = await goAndWaitResult(t);
    assert.ok(res.pass, `${res.line}\n${res.log}`);
  });
});
