// A tree root's own time namespace (`unshare --time --fork --monotonic S --boottime S`): its
// CLOCK_MONOTONIC and CLOCK_BOOTTIME offsets from the host's.
//
// Dump: the offsets from /proc/ROOT/timens_offsets, and the clocks as the tree sees them (the
// host's plus the offsets, read while it is frozen) into CRIU's timens-N.img (N: time_ns_id),
// which holds the clocks inside, with cryo's fields for the offsets and the boot they belong to.
//
// Restore: a time namespace can only be entered by the children of the task that made it
// (unshare(CLONE_NEWTIME) changes time_for_children), and its offsets can be written only while
// no task is in it. So the stub unshares one (an injected call), cryo writes the offsets into
// /proc/STUB/timens_offsets, and the root the stub clones is the namespace's first task; its
// children inherit it. On the same boot the offsets are the dumped ones (the clocks inside keep
// their distance from the host's); after a reboot, or for a CRIU image without cryo's fields,
// they are worked out as CRIU does (dumped clock inside minus the host's now), so the clocks go
// on from where they were instead of going back.
import { readFileSync, writeFileSync } from 'node:fs';
import { create } from '@bufbuild/protobuf';
import { sys, CLONE } from '../../sys/index.js';
import { parseTimensOffsets, formatTimensOffsets, type TimensOffsets } from '../../proc/index.js';
import type { Remote } from '../../ptrace/index.js';
import type { ImageDirWriter, ImageDirReader } from '../../image/dir.js';
import { timens_entrySchema, type timens_entry } from '../../image/gen/timens_pb.js';
import { hasField } from '../../image/presence.js';
import { UserError } from '../../util/errors.js';

export interface TimensState {
  /** The clocks inside at the dump, ns. */
  clocks: TimensOffsets;
  /** The namespace's offsets, when the image has them (cryo's). */
  offsets?: TimensOffsets;
  /** The boot the offsets belong to. */
  bootId?: string;
  /** Not the tree's own: made at restore so the host clocks it saw go on (carriedClocks). */
  carried?: boolean;
}

const NS = 1_000_000_000n;
const CLOCK_MONOTONIC = 1;
const CLOCK_BOOTTIME = 7;

/** The host's clock `id` now, ns (also timens-0.img's, written for every dump). */
export function hostClockNs(id: number): bigint {
  const b = Buffer.alloc(16);
  sys('clock_gettime', [id, b]);
  return b.readBigInt64LE(0) * NS + b.readBigInt64LE(8);
}

export const hostClocks = (): TimensOffsets => ({ monotonic: hostClockNs(CLOCK_MONOTONIC), boottime: hostClockNs(CLOCK_BOOTTIME) });

export const bootId = (): string => readFileSync('/proc/sys/kernel/random/boot_id', 'utf8').trim();

export function timensOffsets(pid: number): TimensOffsets {
  return parseTimensOffsets(readFileSync(`/proc/${pid}/timens_offsets`, 'utf8'));
}

/** The root's time namespace as the dump keeps it (the tree frozen). */
export function dumpTimens(pid: number): TimensState {
  const offsets = timensOffsets(pid);
  const host = hostClocks();
  return { clocks: { monotonic: host.monotonic + offsets.monotonic, boottime: host.boottime + offsets.boottime }, offsets, bootId: bootId() };
}

const timespec = (ns: bigint) => ({ tvSec: ns / NS, tvNsec: ns % NS });
const fromTimespec = (t: { tvSec: bigint; tvNsec: bigint } | undefined, what: string): bigint => {
  if (!t) throw new UserError(`${what}: missing`);
  return t.tvSec * NS + t.tvNsec;
};

/** CRIU's timens entry for `clocks` (timens-0.img: the host's; timens-N.img: a namespace's, with cryo's fields). */
export function timensEntry(s: TimensState): timens_entry {
  return create(timens_entrySchema, {
    monotonic: timespec(s.clocks.monotonic),
    boottime: timespec(s.clocks.boottime),
    ...(s.offsets ? { cryoMonotonicOffsetNs: s.offsets.monotonic, cryoBoottimeOffsetNs: s.offsets.boottime } : {}),
    ...(s.bootId ? { cryoBootId: s.bootId } : {}),
  });
}

export function writeTimensImage(w: ImageDirWriter, id: number, s: TimensState): void {
  w.writeImage(`timens-${id}.img`, 'TIMENS', [timensEntry(s)]);
}

export function readTimensImage(r: ImageDirReader, id: number): TimensState {
  const name = `timens-${id}.img`;
  const e = r.read(name) as timens_entry[];
  if (e.length !== 1) throw new UserError(`${name}: ${e.length} entries, wanted 1 (the root has a time namespace of its own)`);
  const t = e[0]!;
  const clocks = { monotonic: fromTimespec(t.monotonic, `${name} monotonic`), boottime: fromTimespec(t.boottime, `${name} boottime`) };
  const has = (f: keyof timens_entry) => hasField(timens_entrySchema, t, f);
  return {
    clocks,
    ...(has('cryoMonotonicOffsetNs') && has('cryoBoottimeOffsetNs') ? { offsets: { monotonic: t.cryoMonotonicOffsetNs, boottime: t.cryoBoottimeOffsetNs } } : {}),
    ...(has('cryoBootId') ? { bootId: t.cryoBootId } : {}),
  };
}

/**
 * A tree that lived in the host's time namespace, restored on a boot whose clocks are behind the
 * dumped ones (timens-0.img: after a reboot, or on another machine up for less time): without a
 * namespace of its own its CLOCK_MONOTONIC and CLOCK_BOOTTIME would go back, and every deadline
 * it took from them (an absolute clock_nanosleep: Python's time.sleep, a timed condition wait, an
 * event loop's next timer) would lie that far ahead — a program that sleeps 10 ms would sleep
 * for the uptime difference. Such a tree gets a time namespace whose clocks go on from the dumped
 * values (the state returned; what time namespaces were made for). Ahead or on the same boot,
 * nothing: time went on as it does for a stopped process.
 */
export function carriedClocks(host: TimensState, now: { bootId: string; clocks: TimensOffsets }): TimensState | null {
  if (host.bootId === now.bootId) return null;
  if (host.clocks.monotonic <= now.clocks.monotonic && host.clocks.boottime <= now.clocks.boottime) return null;
  return { clocks: host.clocks, carried: true };
}

/** The offsets the new namespace gets: the dumped ones on the same boot, else CRIU's (clocks go on). */
export function restoreOffsets(s: TimensState, now: { bootId: string; clocks: TimensOffsets }): TimensOffsets {
  if (s.offsets && s.bootId === now.bootId) return s.offsets;
  return { monotonic: s.clocks.monotonic - now.clocks.monotonic, boottime: s.clocks.boottime - now.clocks.boottime };
}

/**
 * Makes the stub's time_for_children a new time namespace with the image's offsets: the task it
 * clones next is the namespace's first. Returns the offsets written.
 */
export function timensForStub(stub: Remote, stubPid: number, s: TimensState): TimensOffsets {
  stub.call('unshare', [CLONE.NEWTIME], 'a new time namespace in the stub');
  const offsets = restoreOffsets(s, { bootId: bootId(), clocks: hostClocks() });
  try {
    writeFileSync(`/proc/${stubPid}/timens_offsets`, formatTimensOffsets(offsets));
  } catch (e) {
    throw new UserError(`time namespace: cannot set its offsets (${offsetsText(offsets)}): ${(e as Error).message}`);
  }
  return offsets;
}

export const offsetsText = (o: TimensOffsets): string => `monotonic offset ${o.monotonic} ns, boottime ${o.boottime} ns`;

/** The host's clocks at the dump (timens-0.img, written by cryo and CRIU alike), if the images have them. */
export function readHostClocks(r: ImageDirReader): TimensState | undefined {
  return r.exists('timens-0.img') ? readTimensImage(r, 0) : undefined;
}
