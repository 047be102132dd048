// CPU compatibility: the dump records the CPU (cpuinfo.img), `cryo cpuinfo dump|check` as CRIU
// has them, and a restore on a CPU lacking a feature the images' CPU had is refused with the
// feature named, before any task exists. A synthetic cpuinfo.img claims an instruction set (or an
// XSAVE component) this CPU does not have; the same checkpoint restores when the CPU it records
// is one this CPU covers, and the target (test/targets/regs.c, vector registers) checks itself.
import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { cleanup, cryo, cryoReport, dump, readyTarget, restore, goAndWaitResult, makeTempDir, pidExists, waitPidGone, describePid } from './lib/index.js';
import { encodeImage, decodeImageAs } from '../src/image/io.js';
import { cpuinfo_entrySchema, type cpuinfo_entry } from '../src/image/gen/cpuinfo_pb.js';
import { FEATURE_NAMES, INSTRUCTION_FEATURES, XFEATURE_NAMES } from '../src/resources/task/cpu-features.js';

after(cleanup);

function readCpuinfo(dir: string): cpuinfo_entry {
  return decodeImageAs(fs.readFileSync(path.join(dir, 'cpuinfo.img')), cpuinfo_entrySchema)[0]!;
}

function writeCpuinfo(dir: string, e: cpuinfo_entry): void {
  fs.writeFileSync(path.join(dir, 'cpuinfo.img'), encodeImage('CPUINFO', [e]), { mode: 0o600 });
}

/** An instruction-set feature this CPU lacks, with its word and bit. */
function lackedInstruction(e: cpuinfo_entry): { word: number; bit: number; name: string } {
  const cap = e.x86Entry[0]!.capability;
  for (const [word, bits] of Object.entries(FEATURE_NAMES)) {
    for (const [bit, name] of Object.entries(bits)) {
      if (INSTRUCTION_FEATURES.has(name) && !((cap[Number(word)]! >>> Number(bit)) & 1)) return { word: Number(word), bit: Number(bit), name };
    }
  }
  throw new Error('this CPU has every instruction-set feature cryo names: cannot make one up');
}

/** An XSAVE component this CPU's kernel does not enable. */
function lackedXfeature(e: cpuinfo_entry): { bit: number; name: string } {
  const mask = e.x86Entry[0]!.xfeaturesMask;
  for (const [bit, name] of Object.entries(XFEATURE_NAMES)) if (!(mask & (1n << BigInt(bit)))) return { bit: Number(bit), name };
  throw new Error('this CPU enables every XSAVE component cryo names');
}

describe('cpuinfo', () => {
  it('cryo cpuinfo dump writes CRIU\'s cpuinfo.img (crit decodes it) and check accepts this CPU', () => {
    const dir = path.join(makeTempDir(), 'cpu');
    const d = cryo(['cpuinfo', 'dump', '-D', dir]);
    assert.equal(d.code, 0, cryoReport(d));
    const e = readCpuinfo(dir).x86Entry[0]!;
    assert.ok(e.capability.length >= 20 && e.capability[0]! & 1, 'capability words with fpu set');
    assert.ok(e.xfeaturesMask & 3n, 'x87 and SSE state enabled');
    const c = cryo(['cpuinfo', 'check', '-D', dir]);
    assert.equal(c.code, 0, cryoReport(c));
    assert.match(c.stdout, /this CPU can run the images \(--cpu-cap fpu,ins\)/);
  });

  it('cryo cpuinfo check names a missing instruction set and a missing XSAVE component; --cpu-cap chooses', () => {
    const dir = path.join(makeTempDir(), 'cpu');
    assert.equal(cryo(['cpuinfo', 'dump', '-D', dir]).code, 0);
    const e = readCpuinfo(dir);
    const ins = lackedInstruction(e);
    e.x86Entry[0]!.capability[ins.word]! |= 1 << ins.bit;
    e.x86Entry[0]!.capability[ins.word] = e.x86Entry[0]!.capability[ins.word]! >>> 0;
    writeCpuinfo(dir, e);
    const bad = cryo(['cpuinfo', 'check', '-D', dir]);
    assert.equal(bad.code, 1, cryoReport(bad));
    assert.match(bad.stderr, new RegExp(`lacks .*CPU feature ${ins.name}\\b`));
    assert.equal(cryo(['cpuinfo', 'check', '-D', dir, '--cpu-cap', 'fpu']).code, 0, 'fpu alone does not compare instruction sets');
    assert.equal(cryo(['cpuinfo', 'check', '-D', dir, '--cpu-cap', 'none']).code, 0);
    assert.equal(cryo(['cpuinfo', 'check', '-D', dir, '--cpu-cap', 'all']).code, 1);
    const xf = lackedXfeature(e);
    e.x86Entry[0]!.capability[ins.word]! &= ~(1 << ins.bit);
    e.x86Entry[0]!.capability[ins.word] = e.x86Entry[0]!.capability[ins.word]! >>> 0;
    e.x86Entry[0]!.xfeaturesMask |= 1n << BigInt(xf.bit);
    writeCpuinfo(dir, e);
    const fpu = cryo(['cpuinfo', 'check', '-D', dir, '--cpu-cap', 'fpu']);
    assert.equal(fpu.code, 1, cryoReport(fpu));
    assert.ok(fpu.stderr.includes(`XSAVE component ${xf.name} (xfeatures bit ${xf.bit})`), fpu.stderr);
    assert.equal(cryo(['cpuinfo', 'check', '-D', dir, '--cpu-cap', 'ins']).code, 0, 'ins alone does not compare XSAVE components');
    const unknown = cryo(['cpuinfo', 'check', '-D', dir, '--cpu-cap', 'fpu,bogus']);
    assert.notEqual(unknown.code, 0);
    assert.match(unknown.stderr, /unknown 'bogus'/);
  });

  it('a restore onto a CPU lacking a feature of the images\' CPU is refused, named; with the CPU recorded as it is, the same checkpoint restores', async () => {
    const t = await readyTarget('regs');
    const d = dump(t, '1');
    assert.equal(d.res.code, 0, cryoReport(d.res));
    assert.ok(await waitPidGone(t.pid, 10_000), describePid(t.pid));
    const real = readCpuinfo(d.dir);
    assert.ok(real.x86Entry[0], 'the dump wrote cpuinfo.img');
    // The same checkpoint, its CPU said to have an instruction set this one lacks (the manifest
    // no longer matches: dropped, as for CRIU's images).
    const other = path.join(t.root, 'img-other');
    fs.cpSync(d.dir, other, { recursive: true });
    fs.rmSync(path.join(other, 'cryo-manifest.json'));
    const e = readCpuinfo(other);
    const ins = lackedInstruction(e);
    e.x86Entry[0]!.capability[ins.word] = (e.x86Entry[0]!.capability[ins.word]! | (1 << ins.bit)) >>> 0;
    writeCpuinfo(other, e);
    const refused = restore(t, other, 'other');
    assert.notEqual(refused.res.code, 0, 'restored onto a CPU lacking a feature');
    assert.match(refused.res.stderr, new RegExp(`this CPU lacks what the images' CPU had \\(--cpu-cap fpu,ins\\): CPU feature ${ins.name}\\b`));
    assert.ok(!pidExists(t.pid), `a task was created: ${describePid(t.pid)}`);
    // The dump's own record: every feature it names is here.
    const r = restore(t, d.dir, '1');
    assert.equal(r.res.code, 0, cryoReport(r.res));
    const res = await goAndWaitResult(t);
    assert.ok(res.pass, `${res.line}\n${res.log}`);
  });
});
