// A socket's filter (SO_ATTACH_FILTER, classic BPF): dhcp clients, udev monitors, packet
// capture and load balancers keep one on their sockets, and a socket restored without it lets
// through everything the program meant to drop. Recorded in sk_opts_entry.so_filter (CRIU's
// field: each 8-byte instruction as one little-endian fixed64) and cryo_filter_locked
// (SO_LOCK_FILTER). An eBPF program (SO_ATTACH_BPF) cannot be read back: refused by name.
//
// Attached again only once the socket's queue is filled again (the kinds' afterTasks): the
// queued messages passed the filter when they came, and going through it a second time could
// drop or cut them.
import { createHash } from 'node:crypto';
import type { MessageInitShape } from '@bufbuild/protobuf';
import type { sk_opts_entrySchema } from '../../image/gen/sk-opts_pb.js';
import { attachSocketFilter, getsockoptInt, setsockoptInt, socketFilter, SOL, SO_FILTER } from '../../sys/index.js';
import type { BlockerCause } from '../../util/blocker.js';

/** sk_opts_entry as the socket kinds hold it (sk-opts.ts, which records the filter through here). */
type SkOpts = MessageInitShape<typeof sk_opts_entrySchema>;

const EBPF_REASON = 'an eBPF socket filter (SO_ATTACH_BPF) — not supported: the kernel keeps no copy of its program to read back';

/** An eBPF filter, as check's report and the dump's refusal name it. */
export function filterBlocker(fd: number): BlockerCause | null {
  return socketFilter(fd) === 'ebpf' ? { kind: 'socket', reason: EBPF_REASON } : null;
}

/** The filter fields of sk_opts_entry, none without a filter. */
export function dumpFilter(fd: number): Pick<SkOpts, 'soFilter' | 'cryoFilterLocked'> {
  const insns = socketFilter(fd);
  if (insns === 'ebpf') throw new Error(EBPF_REASON);
  if (!insns) return {};
  const soFilter = Array.from({ length: insns.length / 8 }, (_, i) => insns.readBigUInt64LE(i * 8));
  return getsockoptInt(fd, SOL.SOCKET, SO_FILTER.LOCK) ? { soFilter, cryoFilterLocked: true } : { soFilter };
}

function instructions(words: readonly bigint[]): Buffer {
  const b = Buffer.alloc(words.length * 8);
  words.forEach((w, i) => b.writeBigUInt64LE(BigInt.asUintN(64, w), i * 8));
  return b;
}

/** Attaches the recorded filter (then its lock) to a restored socket: once its queue is whole. */
export function attachFilter(fd: number, opts: SkOpts | undefined, what: string): void {
  const words = opts?.soFilter ?? [];
  if (!words.length) return;
  attachSocketFilter(fd, instructions(words), `${what}: SO_ATTACH_FILTER (${words.length} instructions)`);
  if (opts?.cryoFilterLocked === true) setsockoptInt(fd, SOL.SOCKET, SO_FILTER.LOCK, 1, `${what}: SO_LOCK_FILTER`);
}

/** How the verification reads a filter, from the image and from the socket alike. */
export function filterText(insns: Buffer, locked: boolean): string {
  return `${insns.length / 8} instructions ${createHash('sha256').update(insns).digest('hex').slice(0, 16)}${locked ? ' locked' : ''}`;
}

/** The verification's expectation, null without a filter. */
export function expectedFilter(opts: SkOpts): string | null {
  const words = opts.soFilter ?? [];
  if (!words.length) return null;
  return filterText(instructions(words), opts.cryoFilterLocked === true);
}

/** What a live socket shows, null without a filter. */
export function observedFilter(fd: number): string | null {
  const insns = socketFilter(fd);
  if (insns === 'ebpf') return 'eBPF';
  return insns && filterText(insns, getsockoptInt(fd, SOL.SOCKET, SO_FILTER.LOCK) !== 0);
}
