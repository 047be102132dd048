// Conversion between the x86 XSAVE area as PTRACE_GETREGSET(NT_X86_XSTATE) returns it and
// CRIU's user_x86_fpregs_entry / user_x86_xsave_entry.
//
// The ptrace buffer is in the standard (non-compacted) XSAVE format:
//   0..159    x87: cwd swd twd fop (u16 each), rip rdp (u64), mxcsr mxcsr_mask (u32), st0-7
//   160..415  xmm0-15
//   416..463  unused by hardware
//   464..511  sw_reserved, filled by the kernel: magic1 0x46505853, extended_size, xfeatures
//             (the features the kernel enabled, u64 at 472), xstate_size
//   512..575  XSAVE header: xstate_bv (u64 at 512, which components are not in init state),
//             xcomp_bv (0 in this format), reserved
//   then each component at its standard offset (below).
//
// CRIU's entry keeps the legacy area field by field and these components as little-endian words
// (offsets are Intel's; see "Offsets" below):
//   bit 2 AVX        ymmh_space   64 x u32  @ 576  (256 bytes)
//   bit 3 BNDREGS    bndreg_state  8 x u64  @ 960  (64)     MPX, gone from Linux >= 5.6
//   bit 4 BNDCSR     bndcsr_state  2 x u64  @ 1024 (16 of 64)
//   bit 5 opmask     opmask_reg    8 x u64  @ 1088 (64)
//   bit 6 ZMM_Hi256  zmm_upper    64 x u64  @ 1152 (512)
//   bit 7 Hi16_ZMM   hi16_zmm    128 x u64  @ 1664 (1024)
//   bit 9 PKRU       pkru          2 x u32  @ 2688 (8: PKRU and padding)
// A component is kept when the kernel enabled it (xfeatures) and it fits in the buffer, like
// CRIU does, whether or not it is in init state.
//
// Offsets: in the standard format each component's offset is whatever CPUID leaf 0xD says, and
// vendors differ. The table above is Intel's; AMD Zen 4 has no MPX and packs AVX-512 right after
// AVX (opmask 832, ZMM_Hi256 896, Hi16_ZMM 1408). The image stores words, not offsets, so images
// move between vendors; only the buffer layout must be the local CPU's: the engine passes it to
// each call (sys/cpuid.ts cpuXsaveLayout() reads it once). Without one, Intel's offsets are used.
//
// Not representable in CRIU's entry, so NOT carried: AMX TILECFG/TILEDATA (bits 17, 18), APX
// (bit 19) and any later user component. fpregsFromXsave() refuses a buffer where one of those is
// in use (its xstate_bv bit set) unless called with {allowLoss: true}; check a task beforehand
// with unrepresentableXfeatures(). Supervisor components (CET, PT, ...) never appear in the
// ptrace buffer; user_x86_xsave_entry.cet is filled elsewhere (arch_prctl/NT_X86_SHSTK), and
// xsaveFromFpregs() ignores it.

import { create } from "@bufbuild/protobuf";
import {
  user_x86_fpregs_entrySchema,
  user_x86_xsave_entrySchema,
  type user_x86_fpregs_entry,
  type user_x86_xsave_entry,
} from "./gen/core-x86_pb.js";

export type UserX86FpregsEntry = user_x86_fpregs_entry;
export type UserX86XsaveEntry = user_x86_xsave_entry;

export const FXSAVE_SIZE = 512;
export const XSAVE_HEADER_OFFSET = 512;
export const XSAVE_HEADER_SIZE = 64;
/** sw_reserved magic1 (FP_XSTATE_MAGIC1) the kernel writes at byte 464. */
export const FP_XSTATE_MAGIC1 = 0x46505853;
/** Size of the FP_XSTATE_MAGIC2 word a signal frame appends; counted in sw_reserved.extended_size. */
const FP_XSTATE_MAGIC2_SIZE = 4;
const SW_RESERVED_OFFSET = 464;

/** XSAVE component (xfeature) bit numbers. */
export const XFEATURE = {
  FP: 0,
  SSE: 1,
  YMM: 2,
  BNDREGS: 3,
  BNDCSR: 4,
  OPMASK: 5,
  ZMM_HI256: 6,
  HI16_ZMM: 7,
  PT: 8,
  PKRU: 9,
  PASID: 10,
  CET_USER: 11,
  CET_KERNEL: 12,
  LBR: 15,
  XTILE_CFG: 17,
  XTILE_DATA: 18,
  APX: 19,
} as const;

interface Component {
  bit: number;
  offset: number;
  /** Bytes carried in the entry (may be less than the component's area, see BNDCSR). */
  bytes: number;
  word: 4 | 8;
  get(x: UserX86XsaveEntry): readonly (number | bigint)[];
  set(x: UserX86XsaveEntry, words: (number | bigint)[]): void;
}

/** Intel's standard-format offsets of the components CRIU's entry can hold (the default layout). */
export const STANDARD_OFFSETS: Readonly<Record<number, number>> = {
  [XFEATURE.YMM]: 576,
  [XFEATURE.BNDREGS]: 960,
  [XFEATURE.BNDCSR]: 1024,
  [XFEATURE.OPMASK]: 1088,
  [XFEATURE.ZMM_HI256]: 1152,
  [XFEATURE.HI16_ZMM]: 1664,
  [XFEATURE.PKRU]: 2688,
};

const COMPONENTS: readonly Component[] = [
  { bit: XFEATURE.YMM, offset: 576, bytes: 256, word: 4, get: (x) => x.ymmhSpace, set: (x, w) => (x.ymmhSpace = w as number[]) },
  { bit: XFEATURE.BNDREGS, offset: 960, bytes: 64, word: 8, get: (x) => x.bndregState, set: (x, w) => (x.bndregState = w as bigint[]) },
  { bit: XFEATURE.BNDCSR, offset: 1024, bytes: 16, word: 8, get: (x) => x.bndcsrState, set: (x, w) => (x.bndcsrState = w as bigint[]) },
  { bit: XFEATURE.OPMASK, offset: 1088, bytes: 64, word: 8, get: (x) => x.opmaskReg, set: (x, w) => (x.opmaskReg = w as bigint[]) },
  { bit: XFEATURE.ZMM_HI256, offset: 1152, bytes: 512, word: 8, get: (x) => x.zmmUpper, set: (x, w) => (x.zmmUpper = w as bigint[]) },
  { bit: XFEATURE.HI16_ZMM, offset: 1664, bytes: 1024, word: 8, get: (x) => x.hi16Zmm, set: (x, w) => (x.hi16Zmm = w as bigint[]) },
  { bit: XFEATURE.PKRU, offset: 2688, bytes: 8, word: 4, get: (x) => x.pkru, set: (x, w) => (x.pkru = w as number[]) },
];

/** Offset of each component bit in the standard-format buffer (CPUID.(EAX=0xD,ECX=bit).EBX). */
export type XsaveLayout = ReadonlyMap<number, { offset: number }>;

// Where a component sits: from the call's layout, else Intel's table. A layout that lacks the
// component means this CPU does not have it: undefined.
function offsetOf(c: Component, layout: XsaveLayout | undefined): number | undefined {
  return layout === undefined ? c.offset : layout.get(c.bit)?.offset;
}

/** x87 + SSE live in the legacy area; they are always representable. */
const REPRESENTABLE = COMPONENTS.reduce((m, c) => m | (1n << BigInt(c.bit)), 0b11n);

export class XsaveError extends Error {
  override readonly name = "XsaveError";
}

const bit = (n: number): bigint => 1n << BigInt(n);

function view(buf: Uint8Array): DataView {
  return new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
}

/** The kernel's sw_reserved description of a GETREGSET buffer, or undefined if absent. */
export function xsaveFeatures(buf: Uint8Array): { xfeatures: bigint; xstateSize: number; extendedSize: number } | undefined {
  if (buf.length < FXSAVE_SIZE) return undefined;
  const v = view(buf);
  if (v.getUint32(SW_RESERVED_OFFSET, true) !== FP_XSTATE_MAGIC1) return undefined;
  return {
    extendedSize: v.getUint32(SW_RESERVED_OFFSET + 4, true),
    xfeatures: v.getBigUint64(SW_RESERVED_OFFSET + 8, true),
    xstateSize: v.getUint32(SW_RESERVED_OFFSET + 16, true),
  };
}

/** xstate_bv of a buffer (0 when it has no XSAVE header). */
export function xstateBv(buf: Uint8Array): bigint {
  return buf.length >= XSAVE_HEADER_OFFSET + 8 ? view(buf).getBigUint64(XSAVE_HEADER_OFFSET, true) : 0n;
}

/** Component bits in use (xstate_bv) that CRIU's entry cannot carry, e.g. [17, 18] for AMX. */
export function unrepresentableXfeatures(buf: Uint8Array): number[] {
  const lost = xstateBv(buf) & ~REPRESENTABLE;
  const bits: number[] = [];
  for (let b = 0; b < 64; b++) if (lost & bit(b)) bits.push(b);
  return bits;
}

/**
 * Build CRIU's fpregs entry from a PTRACE_GETREGSET(NT_X86_XSTATE) buffer (or a 512-byte
 * FXSAVE area, which gives an entry without xsave). Throws XsaveError when state that the entry
 * cannot hold is in use, unless opts.allowLoss.
 */
export function fpregsFromXsave(buf: Uint8Array, opts: { allowLoss?: boolean; layout?: XsaveLayout } = {}): UserX86FpregsEntry {
  if (buf.length < FXSAVE_SIZE) throw new XsaveError(`xsave buffer of ${buf.length} bytes is smaller than the ${FXSAVE_SIZE}-byte FXSAVE area`);
  const v = view(buf);
  const words32 = (off: number, n: number): number[] => Array.from({ length: n }, (_, i) => v.getUint32(off + 4 * i, true));
  const fp = create(user_x86_fpregs_entrySchema, {
    cwd: v.getUint16(0, true),
    swd: v.getUint16(2, true),
    twd: v.getUint16(4, true),
    fop: v.getUint16(6, true),
    rip: v.getBigUint64(8, true),
    rdp: v.getBigUint64(16, true),
    mxcsr: v.getUint32(24, true),
    mxcsrMask: v.getUint32(28, true),
    stSpace: words32(32, 32),
    xmmSpace: words32(160, 64),
  });
  if (buf.length < XSAVE_HEADER_OFFSET + XSAVE_HEADER_SIZE) return fp;

  const bv = xstateBv(buf);
  const lost = unrepresentableXfeatures(buf);
  if (lost.length > 0 && !opts.allowLoss) {
    throw new XsaveError(
      `xsave components ${lost.join(", ")} are in use (xstate_bv 0x${bv.toString(16)}) but CRIU's image format cannot hold them` +
        (lost.some((b) => b === XFEATURE.XTILE_CFG || b === XFEATURE.XTILE_DATA) ? " (AMX tile state)" : ""),
    );
  }
  // GETREGSET leaves sw_reserved empty, so which components exist comes from the layout.
  const layout = opts.layout;
  const enabled = xsaveFeatures(buf)?.xfeatures ?? (layout ? [...layout.keys()].reduce((m, b) => m | bit(b), 0b11n) : bv);
  const xsave = create(user_x86_xsave_entrySchema, { xstateBv: bv & REPRESENTABLE });
  for (const c of COMPONENTS) {
    const off = offsetOf(c, opts.layout);
    if (!(enabled & bit(c.bit)) || off === undefined || off + c.bytes > buf.length) continue;
    const n = c.bytes / c.word;
    c.set(
      xsave,
      Array.from({ length: n }, (_, i) => (c.word === 4 ? v.getUint32(off + 4 * i, true) : v.getBigUint64(off + 8 * i, true))),
    );
  }
  fp.xsave = xsave;
  return fp;
}

/**
 * Build a `size`-byte standard-format XSAVE buffer for PTRACE_SETREGSET(NT_X86_XSTATE) from
 * CRIU's entry. `size` is the length GETREGSET returned on the restoring machine. When
 * `xfeatures` (the restoring kernel's, see xsaveFeatures()) is given, components the image uses
 * but that machine lacks are an error instead of a kernel EINVAL later. `layout`: the CPU's
 * (sys/cpuid.ts cpuXsaveLayout()); Intel's offsets without it.
 */
export function xsaveFromFpregs(entry: UserX86FpregsEntry, size: number, xfeatures?: bigint, layout?: XsaveLayout): Buffer {
  if (size < FXSAVE_SIZE) throw new XsaveError(`xsave size ${size} is smaller than the ${FXSAVE_SIZE}-byte FXSAVE area`);
  const buf = Buffer.alloc(size);
  const v = view(buf);
  v.setUint16(0, entry.cwd, true);
  v.setUint16(2, entry.swd, true);
  v.setUint16(4, entry.twd, true);
  v.setUint16(6, entry.fop, true);
  v.setBigUint64(8, entry.rip, true);
  v.setBigUint64(16, entry.rdp, true);
  v.setUint32(24, entry.mxcsr, true);
  v.setUint32(28, entry.mxcsrMask, true);
  putWords32(v, 32, entry.stSpace, 32, "st_space");
  putWords32(v, 160, entry.xmmSpace, 64, "xmm_space");
  // Old images carry the unused tail of the legacy area; only its hardware-unused part is kept.
  entry.padding.slice(0, 12).forEach((w, i) => v.setUint32(416 + 4 * i, w, true));
  if (size < XSAVE_HEADER_OFFSET + XSAVE_HEADER_SIZE) return buf;

  const x = entry.xsave;
  // Without an xsave entry the image came from an FXSAVE-only dump: x87 and SSE state only.
  const bv = x === undefined ? 0b11n : x.xstateBv;
  let present = 0b11n;
  if (x !== undefined) present |= putComponents(v, x, bv, size, layout);
  const missing = bv & ~present;
  if (missing) throw new XsaveError(`xstate_bv 0x${bv.toString(16)} names components the image does not carry (0x${missing.toString(16)})`);
  if (xfeatures !== undefined && bv & ~xfeatures) {
    throw new XsaveError(`image uses xsave components 0x${(bv & ~xfeatures).toString(16)} that this machine does not enable (xfeatures 0x${xfeatures.toString(16)})`);
  }
  v.setBigUint64(XSAVE_HEADER_OFFSET, bv, true);
  // sw_reserved as the kernel fills it (it ignores these bytes on SETREGSET).
  v.setUint32(SW_RESERVED_OFFSET, FP_XSTATE_MAGIC1, true);
  v.setUint32(SW_RESERVED_OFFSET + 4, size + FP_XSTATE_MAGIC2_SIZE, true);
  v.setBigUint64(SW_RESERVED_OFFSET + 8, xfeatures ?? present, true);
  v.setUint32(SW_RESERVED_OFFSET + 16, size, true);
  return buf;
}

function putWords32(v: DataView, off: number, words: readonly number[], n: number, what: string): void {
  if (words.length !== n && words.length !== 0) throw new XsaveError(`${what}: image has ${words.length} words, expected ${n}`);
  words.forEach((w, i) => v.setUint32(off + 4 * i, w, true));
}

// Write the components the entry carries; returns their bits. A component the image uses that
// does not fit in `size` is an error; an unused one is dropped.
function putComponents(v: DataView, x: UserX86XsaveEntry, bv: bigint, size: number, layout: XsaveLayout | undefined): bigint {
  let present = 0n;
  for (const c of COMPONENTS) {
    const words = c.get(x);
    if (words.length === 0) continue;
    if (words.length * c.word !== c.bytes) {
      throw new XsaveError(`xsave component ${c.bit}: image has ${words.length} words, expected ${c.bytes / c.word}`);
    }
    const off = offsetOf(c, layout);
    if (off === undefined || off + c.bytes > size) {
      if (bv & bit(c.bit)) {
        const why = off === undefined ? "this CPU's xsave layout has no such component" : `it does not fit in this machine's ${size}-byte xsave area`;
        throw new XsaveError(`xsave component ${c.bit} is in use in the image but ${why}`);
      }
      continue;
    }
    words.forEach((w, i) => (c.word === 4 ? v.setUint32(off + 4 * i, Number(w), true) : v.setBigUint64(off + 8 * i, BigInt(w), true)));
    present |= bit(c.bit);
  }
  return present;
}
