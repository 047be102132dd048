// The restore maps, protects, advises and locks a task's VMAs, and fills its pages, in batches of
// injected calls (resources/mm/restore.ts CallQueue: about 40 calls a stop). A target with 150
// separate mappings (several batches), each read-write, read-only, mlock()ed, MADV_RANDOM,
// MADV_SEQUENTIAL or PROT_NONE, checks after restore every protection, VmFlag and content itself.
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import { after, describe, it } from 'node:test';
import { restore, cleanupTrees, readyTarget, dumpAndKill, checkRestore, expectPass } from './lib/index.js';

after(cleanupTrees);

describe('batched VMA restore', () => {
  it('150 mappings with protection, lock and advice variants come back, each checked by the target', async () => {
    const t = await readyTarget('vmabatch');
    const { dir } = await dumpAndKill(t, [t.pid]);
    const r = restore(t, dir, '1');
    checkRestore(t, r);
    // The batches are real: the whole restore took fewer ptrace stops than the task has mappings
    // (one stop per injected call would be several hundred).
    const log = fs.readFileSync(r.res.logFile!, 'utf8');
    const m = /restore done: .* (\d+) ptrace stops/.exec(log);
    assert.ok(m, 'the log says how many ptrace stops the restore took');
    assert.ok(Number(m[1]) < 150, `${m[1]} ptrace stops for a task of 150 mappings`);
    await expectPass(t);
  });
});
