// Socket-level options every socket kind shares (SOL_SOCKET), as CRIU's sk_opts_entry holds them.
// Dumped with getsockopt on our copy of the task's socket; restored only where they differ from
// a fresh socket's, because setting a buffer size also pins it (no more autotuning).
import type { MessageInitShape } from '@bufbuild/protobuf';
import { sk_opts_entrySchema } from '../../image/gen/sk-opts_pb.js';
import { hasField } from '../../image/presence.js';
import { getsockoptInt, getsockoptRaw, setsockoptInt, setsockoptRaw, SOL, SO, O, F, sys, sysTry } from '../../sys/index.js';
import { skip } from '../../util/skip.js';
import { dumpProtoOpts, restoreProtoOpts, type ProtoOpt } from './sk-proto-opts.js';
import { dumpFilter } from './sk-filter.js';

export type SkOpts = MessageInitShape<typeof sk_opts_entrySchema> & {
  soSndbuf: number;
  soRcvbuf: number;
  soSndTmoSec: bigint;
  soSndTmoUsec: bigint;
  soRcvTmoSec: bigint;
  soRcvTmoUsec: bigint;
};

const SO_BINDTODEVICE = 25;

/** Boolean and integer options: image field, option number. */
const FLAGS = [
  ['reuseaddr', SO.REUSEADDR],
  ['soReuseport', SO.REUSEPORT],
  ['soBroadcast', SO.BROADCAST],
  ['soKeepalive', SO.KEEPALIVE],
  ['soPasscred', SO.PASSCRED],
  ['soPasssec', SO.PASSSEC],
  ['soDontroute', SO.DONTROUTE],
  ['soNoCheck', SO.NO_CHECK],
] as const;
const INTS = [
  ['soPriority', SO.PRIORITY],
  ['soRcvlowat', SO.RCVLOWAT],
  ['soMark', SO.MARK],
  ['soOobinline', SO.OOBINLINE],
] as const;

function timeval(fd: number, opt: number): [bigint, bigint] {
  const b = getsockoptRaw(fd, SOL.SOCKET, opt, 16);
  return [b.readBigInt64LE(0), b.readBigInt64LE(8)];
}

/** An option the socket kind may not have (SO_PASSSEC without an LSM): null. */
function optInt(fd: number, opt: number): number | null {
  const b = Buffer.alloc(4);
  const len = Buffer.alloc(4);
  len.writeUInt32LE(4);
  return sysTry('getsockopt', [fd, SOL.SOCKET, opt, b, len]).ret < 0 ? null : b.readInt32LE(0);
}

export function dumpSkOpts(fd: number): SkOpts {
  const [sndSec, sndUsec] = timeval(fd, SO.SNDTIMEO);
  const [rcvSec, rcvUsec] = timeval(fd, SO.RCVTIMEO);
  const o: SkOpts = {
    soSndbuf: getsockoptInt(fd, SOL.SOCKET, SO.SNDBUF),
    soRcvbuf: getsockoptInt(fd, SOL.SOCKET, SO.RCVBUF),
    soSndTmoSec: sndSec,
    soSndTmoUsec: sndUsec,
    soRcvTmoSec: rcvSec,
    soRcvTmoUsec: rcvUsec,
  };
  const rec = o as Record<string, unknown>;
  for (const [field, opt] of FLAGS) {
    const v = optInt(fd, opt);
    if (v !== null) rec[field] = v !== 0;
  }
  for (const [field, opt] of INTS) {
    const v = optInt(fd, opt);
    if (v !== null) rec[field] = v;
  }
  const linger = getsockoptRaw(fd, SOL.SOCKET, SO.LINGER, 8);
  if (linger.readInt32LE(0)) o.soLinger = linger.readInt32LE(4);
  const dev = getsockoptRaw(fd, SOL.SOCKET, SO_BINDTODEVICE, 16).toString('utf8').replace(/\0.*$/s, '');
  if (dev) o.soBoundDev = dev;
  const more = dumpProtoOpts(fd);
  if (more.length) o.cryoOpts = more;
  return { ...o, ...dumpFilter(fd) };
}

/**
 * Puts the options back on a new socket, except SO_REUSEADDR (the caller sets it around bind)
 * and the filter (sk-filter.ts: the kind attaches it once the socket's queue is filled).
 * Buffer sizes: the kernel doubles what it is given, so half the saved value goes in.
 */
export function restoreSkOpts(fd: number, o: SkOpts, what: string): void {
  const has = (field: string) => hasField(sk_opts_entrySchema, o, field);
  const setIf = (opt: number, want: number, name: string) => {
    const cur = optInt(fd, opt);
    if (cur === want || (cur === null && !want)) return;
    setsockoptInt(fd, SOL.SOCKET, opt, want, `${what}: ${name}`);
  };
  if (getsockoptInt(fd, SOL.SOCKET, SO.SNDBUF) !== o.soSndbuf) setsockoptInt(fd, SOL.SOCKET, SO.SNDBUFFORCE, o.soSndbuf / 2, `${what}: SO_SNDBUF`);
  if (getsockoptInt(fd, SOL.SOCKET, SO.RCVBUF) !== o.soRcvbuf && !skip('sk-rcvbuf')) setsockoptInt(fd, SOL.SOCKET, SO.RCVBUFFORCE, o.soRcvbuf / 2, `${what}: SO_RCVBUF`);
  const tv = (opt: number, sec: bigint, usec: bigint) => {
    if (sec === 0n && usec === 0n) return;
    const b = Buffer.alloc(16);
    b.writeBigInt64LE(sec, 0);
    b.writeBigInt64LE(usec, 8);
    setsockoptRaw(fd, SOL.SOCKET, opt, b, `${what}: timeout`);
  };
  tv(SO.SNDTIMEO, o.soSndTmoSec, o.soSndTmoUsec);
  tv(SO.RCVTIMEO, o.soRcvTmoSec, o.soRcvTmoUsec);
  const rec = o as Record<string, unknown>;
  for (const [field, opt] of FLAGS) {
    if (field === 'reuseaddr' || !has(field)) continue;
    setIf(opt, rec[field] ? 1 : 0, field);
  }
  for (const [field, opt] of INTS) if (has(field)) setIf(opt, rec[field] as number, field);
  // Linger is recorded only when it is on (its seconds, 0 included): absent means off.
  if (has('soLinger')) {
    const b = Buffer.alloc(8);
    b.writeInt32LE(1, 0);
    b.writeInt32LE(o.soLinger ?? 0, 4);
    setsockoptRaw(fd, SOL.SOCKET, SO.LINGER, b, `${what}: SO_LINGER`);
  }
  if (has('soBoundDev') && o.soBoundDev) setsockoptRaw(fd, SOL.SOCKET, SO_BINDTODEVICE, Buffer.from(o.soBoundDev + '\0'), `${what}: SO_BINDTODEVICE ${o.soBoundDev}`);
  if (o.cryoOpts?.length && !skip('sk-proto-opts')) restoreProtoOpts(fd, o.cryoOpts as ProtoOpt[], what);
}

/**
 * Finishes a new socket of ours: `build` binds, connects or fills it; then it gets the image's
 * status flags (O_NONBLOCK, O_ASYNC ...). Closed again if anything fails.
 */
export function finishSocket(fd: number, flags: number, build: () => void): number {
  try {
    build();
    const fl = flags & ~(O.ACCMODE | O.CLOEXEC);
    if (fl) sys('fcntl', [fd, F.SETFL, fl]);
  } catch (err) {
    sys('close', [fd]);
    throw err;
  }
  return fd;
}
