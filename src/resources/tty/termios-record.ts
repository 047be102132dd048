// Terminal settings <-> CRIU's termios_entry / winsize_entry (tty.proto).
//
// CRIU's c_cc is not one control character per element: CRIU memcpy()s glibc's 32-byte c_cc
// array into its repeated uint32 (19 elements, TERMIOS_NCC), so element i holds characters
// 4i..4i+3 little-endian, elements 8..18 are whatever its allocator left there, and it copies the
// same 32 bytes back on restore. cryo writes and reads that layout (zeroing the tail), so an image
// of either tool restores the right characters with the other. CRIU leaves c_ispeed/c_ospeed 0
// (it uses TCGETS); cryo records the real speeds (TCGETS2). A zero speed from a CRIU image is
// harmless: for the classic Bnnn values the kernel derives the speeds from c_cflag again.
import { create } from '@bufbuild/protobuf';
import { termios_entrySchema, winsize_entrySchema, type termios_entry, type winsize_entry } from '../../image/gen/tty_pb.js';
import { KERNEL_NCCS, type Termios, type Winsize } from '../../sys/index.js';

/** CRIU's TERMIOS_NCC: the number of c_cc elements it writes and requires. */
export const TERMIOS_NCC = 19;

export function termiosToEntry(t: Termios): termios_entry {
  const bytes = Buffer.alloc(TERMIOS_NCC * 4);
  for (let i = 0; i < KERNEL_NCCS; i++) bytes[i] = (t.cc[i] ?? 0) & 0xff;
  const cCc: number[] = [];
  for (let i = 0; i < TERMIOS_NCC; i++) cCc.push(i < 8 ? bytes.readUInt32LE(i * 4) : 0);
  return create(termios_entrySchema, {
    cIflag: t.iflag >>> 0, cOflag: t.oflag >>> 0, cCflag: t.cflag >>> 0, cLflag: t.lflag >>> 0,
    cLine: t.line, cIspeed: t.ispeed >>> 0, cOspeed: t.ospeed >>> 0, cCc,
  });
}

/** Throws if the entry has fewer c_cc elements than CRIU requires (CRIU refuses such images too). */
export function termiosFromEntry(e: termios_entry, what: string): Termios {
  if (e.cCc.length < TERMIOS_NCC) throw new Error(`${what}: termios has ${e.cCc.length} c_cc elements, ${TERMIOS_NCC} expected`);
  // Only the first 32 bytes (elements 0..7) are characters: the rest is CRIU's allocator noise.
  const bytes = Buffer.alloc(32);
  for (let i = 0; i < 8; i++) bytes.writeUInt32LE(e.cCc[i]! >>> 0, i * 4);
  const cc: number[] = [];
  for (let i = 0; i < KERNEL_NCCS; i++) cc.push(bytes[i]!);
  return {
    iflag: e.cIflag, oflag: e.cOflag, cflag: e.cCflag, lflag: e.cLflag, line: e.cLine, cc,
    ispeed: e.cIspeed, ospeed: e.cOspeed,
  };
}

export function winsizeToEntry(w: Winsize): winsize_entry {
  return create(winsize_entrySchema, { wsRow: w.row, wsCol: w.col, wsXpixel: w.xpixel, wsYpixel: w.ypixel });
}

export function winsizeFromEntry(e: winsize_entry): Winsize {
  return { row: e.wsRow, col: e.wsCol, xpixel: e.wsXpixel, ypixel: e.wsYpixel };
}
