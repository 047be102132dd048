// The time namespace's offsets as text (/proc/PID/timens_offsets, both ways) and which offsets a
// restore writes: the dumped ones on the boot they were taken on, CRIU's (dumped clock less the
// host's now) after a reboot or without them; and when a tree of the host's time namespace gets
// one (its clocks would go back).
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { parseTimensOffsets, formatTimensOffsets } from '../src/proc/timens.js';
import { restoreOffsets, carriedClocks } from '../src/resources/ns/time.js';

const S = 1_000_000_000n;

describe('timens offsets', () => {
  it('parses the kernel\'s text, by name and by clock id, negative offsets with nanoseconds in [0, 1e9)', () => {
    assert.deepEqual(parseTimensOffsets('monotonic         500         0\nboottime         1000         0\n'), { monotonic: 500n * S, boottime: 1000n * S });
    assert.deepEqual(parseTimensOffsets('1 -3 250000000\n7 0 5\n'), { monotonic: -3n * S + 250_000_000n, boottime: 5n });
    assert.throws(() => parseTimensOffsets('monotonic 1 0\n'), /without both clocks/);
    assert.throws(() => parseTimensOffsets('realtime 1 0\nmonotonic 1 0\nboottime 1 0\n'), /not understood/);
  });

  it('formats what the kernel accepts, and reads back the same', () => {
    const o = { monotonic: -2n * S - 1n, boottime: 7n * S + 9n };
    assert.equal(formatTimensOffsets(o), `1 -3 ${S - 1n}\n7 7 9\n`);
    assert.deepEqual(parseTimensOffsets(formatTimensOffsets(o)), o);
  });

  it('keeps the dumped offsets on the same boot, and works them out from the clocks otherwise', () => {
    const saved = { clocks: { monotonic: 600n * S, boottime: 1100n * S }, offsets: { monotonic: 500n * S, boottime: 1000n * S }, bootId: 'a' };
    const now = { monotonic: 50n * S, boottime: 60n * S };
    assert.deepEqual(restoreOffsets(saved, { bootId: 'a', clocks: now }), saved.offsets);
    const criu = { monotonic: 550n * S, boottime: 1040n * S };
    assert.deepEqual(restoreOffsets(saved, { bootId: 'b', clocks: now }), criu, 'after a reboot');
    assert.deepEqual(restoreOffsets({ clocks: saved.clocks }, { bootId: 'a', clocks: now }), criu, 'a CRIU image');
  });

  it("a tree of the host's time namespace gets one of its own only when this boot's clocks are behind the dumped ones", () => {
    const dumped = { clocks: { monotonic: 3580n * S, boottime: 3590n * S }, bootId: 'a' };
    const early = { monotonic: 1000n * S, boottime: 1010n * S };
    const late = { monotonic: 9000n * S, boottime: 9010n * S };
    assert.equal(carriedClocks(dumped, { bootId: 'a', clocks: early }), null, 'the same boot: never (its clocks cannot be behind)');
    assert.equal(carriedClocks(dumped, { bootId: 'b', clocks: late }), null, 'a later boot up for longer: time went on');
    const carried = carriedClocks(dumped, { bootId: 'b', clocks: early });
    assert.deepEqual(carried, { clocks: dumped.clocks, carried: true });
    // Its offsets are CRIU's rule: the clocks inside start at the dumped values.
    assert.deepEqual(restoreOffsets(carried!, { bootId: 'b', clocks: early }), { monotonic: 2580n * S, boottime: 2580n * S });
    assert.deepEqual(carriedClocks({ clocks: dumped.clocks }, { bootId: 'b', clocks: { monotonic: 4000n * S, boottime: 3000n * S } })?.carried, true, 'a CRIU image (no boot id), boottime behind');
  });
});
