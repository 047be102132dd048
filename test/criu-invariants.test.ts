// cryo's images satisfy what CRIU 4.2's restore checks (docs/criu-invariants.md), one test per
// invariant, on real dumps decoded by crit: a process tree (zombies, a stopped task, shared
// memory), a threaded process, a process with pipes and one with seccomp filters. Each check is
// also shown to catch the images broken in the way it guards against, and to accept CRIU's own
// fixtures, so none of them can pass vacuously.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import * as path from 'node:path';
import { FIXTURES, cleanupTrees, cleanup, critDecodeAll, cryoReport, dump, readyTarget, descendants, type Target } from './lib/index.js';
import { INVARIANTS, type CritImages } from './lib/criu-invariants.js';

const dumps: { label: string; img: CritImages }[] = [];
const targets: Target[] = [];

before(async () => {
  for (const name of ['tree', 'threads', 'pipes', 'seccomp']) {
    const t = await readyTarget(name);
    targets.push(t);
    descendants(t.pid); // recorded for cleanupTrees
    const d = dump(t, 'inv', { leaveRunning: true });
    assert.equal(d.res.code, 0, `dump of ${name} failed\n${cryoReport(d.res)}`);
    dumps.push({ label: name, img: { dir: d.dir, decoded: await critDecodeAll(d.dir) } });
  }
});

after(async () => {
  await cleanupTrees();
  await cleanup();
});

/** Deep copy of decoded images with `f` applied to one image's entries. */
function broken(img: CritImages, file: string, f: (entries: any[]) => void): CritImages { // eslint-disable-line @typescript-eslint/no-explicit-any
  const decoded = new Map([...img.decoded].map(([k, v]) => [k, structuredClone(v)]));
  f((decoded.get(file) as { entries: unknown[] }).entries);
  return { dir: img.dir, decoded };
}

const rootPid = (img: CritImages) => (img.decoded.get('pstree.img') as { entries: { pid: number }[] }).entries[0]!.pid;

/** For each invariant: images of the tree dump broken so that the invariant does not hold. */
const BREAK: Record<string, (img: CritImages) => CritImages> = {
  'inventory-format': (img) => broken(img, 'inventory.img', (e) => (e[0].fdinfo_per_id = false)),
  'root-cgset': (img) => broken(img, 'inventory.img', (e) => (e[0].root_cg_set = 999)),
  'root-ids-differ': (img) => broken(img, `ids-${rootPid(img)}.img`, (e) => (e[0].files_id = (img.decoded.get('inventory.img') as any).entries[0].root_ids.files_id)), // eslint-disable-line @typescript-eslint/no-explicit-any
  'task-ns-ids': (img) => broken(img, `ids-${rootPid(img)}.img`, (e) => delete e[0].uts_ns_id),
  'same-namespaces': (img) => broken(img, `ids-${rootPid(img)}.img`, (e) => (e[0].net_ns_id += 100)),
  'pstree-shape': (img) => broken(img, 'pstree.img', (e) => e.reverse()),
  'sessions-led': (img) => broken(img, 'pstree.img', (e) => (e[e.length - 1].sid = 1)),
  cores: (img) => broken(img, `core-${rootPid(img)}.img`, (e) => (e[0].mtype = 'AARCH64')),
  'fds-name-files': (img) => broken(img, 'files.img', (e) => e.splice(0, e.length)),
  'mm-sane': (img) => broken(img, `mm-${rootPid(img)}.img`, (e) => e[0].vmas.reverse()),
  'pagemap-in-private-vmas': (img) => broken(img, `pagemap-${rootPid(img)}.img`, (e) => (e[1].nr_pages += 1)),
  'vdso-marked': (img) => broken(img, `mm-${rootPid(img)}.img`, (e) => {
    for (const v of e[0].vmas) v.status &= ~(1 << 3); // VMA_AREA_VDSO
  }),
  'seccomp-refs': (img) => broken(img, 'seccomp.img', (e) => e.splice(0, e.length)),
};

describe('CRIU restore invariants on cryo images', () => {
  for (const inv of INVARIANTS) {
    it(`${inv.id}: ${inv.what}`, () => {
      for (const d of dumps) assert.deepEqual(inv.check(d.img), [], `${d.label} dump`);
      const breakIt = BREAK[inv.id];
      assert.ok(breakIt, `no way to break ${inv.id} in this test`);
      // seccomp-refs is broken on the dump that has filters; the others on the tree.
      const victim = dumps.find((d) => d.label === (inv.id === 'seccomp-refs' ? 'seccomp' : 'tree'))!;
      assert.notDeepEqual(inv.check(breakIt(victim.img)), [], `${inv.id} does not see the images broken`);
    });
  }

  it("CRIU 4.2's own images pass every check", async () => {
    for (const name of ['simple-sleep', 'tree', 'threads', 'py-threads-pipe-socket']) {
      const dir = path.join(FIXTURES, name);
      const img = { dir, decoded: await critDecodeAll(dir) };
      for (const inv of INVARIANTS) {
        // crit 3.17 reads CRIU 4.2's u64 nr_pages (field 5) as unknown: their page counts are 0.
        if (inv.id === 'pagemap-in-private-vmas') continue;
        assert.deepEqual(inv.check(img), [], `${name}: ${inv.id}`);
      }
    }
  });
});
