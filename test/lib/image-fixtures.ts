// Shared by the image-layer tests (image.test.ts, image-format.test.ts): the CRIU 4.2 fixture
// images, crit, temporary directories removed after the run, and an ImageError expectation.
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { after } from "node:test";
import { isImageError, type ImageError } from "../../src/image/errors.js";
import { kindForFileName } from "../../src/image/magic.js";
import { create } from "@bufbuild/protobuf";
import { fpregsFromXsave, type XsaveLayout } from "../../src/image/xsave.js";
import { core_entrySchema, core_entry_march, type core_entry } from "../../src/image/gen/core_pb.js";
import { user_x86_regs_entrySchema, type user_x86_regs_entry } from "../../src/image/gen/core-x86_pb.js";
import { FIXTURES } from "./build.js";

export const CRIT = process.env["CRIT"] ?? "/usr/bin/crit";
export const PYCRIU_MAGIC = "/usr/lib/python3/dist-packages/pycriu/images/magic.py";
export const haveCrit = fs.existsSync(CRIT);
export const haveFixtures = fs.existsSync(FIXTURES);

export function fixtureDirs(): string[] {
  if (!haveFixtures) return [];
  return fs
    .readdirSync(FIXTURES)
    .map((d) => path.join(FIXTURES, d))
    .filter((d) => fs.statSync(d).isDirectory());
}

/** Every protobuf image of the fixtures: all files but the raw pages-N.img. */
export function fixtureImages(): string[] {
  return fixtureDirs().flatMap((d) =>
    fs
      .readdirSync(d)
      .filter((f) => kindForFileName(f)?.framing !== "raw")
      .map((f) => path.join(d, f)),
  );
}

/** `crit decode --pretty` of a file, parsed. */
export function crit(file: string): { magic: string; entries: any[] } {
  return JSON.parse(execFileSync(CRIT, ["decode", "-i", file, "--pretty"], { encoding: "utf8" }));
}

const tmpDirs: string[] = [];
after(() => {
  for (const d of tmpDirs) fs.rmSync(d, { recursive: true, force: true });
});

export function tmpDir(): string {
  const d = fs.mkdtempSync(path.join(os.tmpdir(), "cryo-image-test-"));
  tmpDirs.push(d);
  return d;
}

export function expectImageError(fn: () => unknown, code: ImageError["code"], text?: RegExp): ImageError {
  try {
    fn();
  } catch (e) {
    assert.ok(isImageError(e), `expected ImageError ${code}, got ${String(e)}`);
    assert.equal(e.code, code, e.message);
    if (text) assert.match(e.message, text);
    return e;
  }
  assert.fail(`expected ImageError ${code}, nothing was thrown`);
}

export function regs(over: Partial<Record<keyof user_x86_regs_entry, bigint>> = {}): user_x86_regs_entry {
  const names = ["r15", "r14", "r13", "r12", "bp", "bx", "r11", "r10", "r9", "r8", "ax", "cx", "dx", "si", "di",
    "origAx", "ip", "cs", "flags", "sp", "ss", "fsBase", "gsBase", "ds", "es", "fs", "gs"] as const;
  const init: Record<string, bigint> = {};
  names.forEach((n, i) => (init[n] = over[n] ?? BigInt(i + 1)));
  return create(user_x86_regs_entrySchema, init);
}

export function sampleCore(): core_entry {
  return create(core_entrySchema, {
    mtype: core_entry_march.X86_64,
    threadInfo: {
      clearTidAddr: 0x7f0000001000n,
      gpregs: regs({ ip: 0x401000n, sp: 0x7ffc00001000n, origAx: 0xffffffffffffffffn }),
      fpregs: fpregsFromXsave(syntheticXsave(2696, 0x2e7n, 0x2a3n)),
      tls: [],
    },
    tc: {
      taskState: 1,
      exitCode: 0,
      personality: 0,
      flags: 0x400000,
      blkSigset: 0x10000n,
      comm: "cryo-test",
      sigactions: [],
    },
    ids: { vmId: 1, filesId: 1, fsId: 1, sighandId: 1 },
    threadCore: { futexRla: 0n, futexRlaLen: 24, comm: "cryo-test", cgSet: 1 },
  });
}

/** A standard-format XSAVE buffer like PTRACE_GETREGSET returns, with pseudo-random state. */
export function syntheticXsave(size: number, xfeatures: bigint, xstateBv: bigint, layout?: XsaveLayout): Buffer {
  const buf = Buffer.alloc(size);
  let s = 7;
  const fill = (off: number, len: number) => {
    for (let i = 0; i < len; i++) buf[off + i] = (s = (s * 73 + 41) % 251);
  };
  fill(0, 416); // x87, SSE
  buf.writeUInt32LE(0x1f80, 24); // mxcsr
  buf.writeUInt32LE(0xffff, 28); // mxcsr_mask
  buf.writeUInt32LE(0x46505853, 464);
  buf.writeUInt32LE(size + 4, 468);
  buf.writeBigUInt64LE(xfeatures, 472);
  buf.writeUInt32LE(size, 480);
  if (size >= 576) buf.writeBigUInt64LE(xstateBv, 512);
  const areas: [number, number, number][] = [[2, 576, 256], [5, 1088, 64], [6, 1152, 512], [7, 1664, 1024], [9, 2688, 8]];
  for (const [b, intelOff, len] of areas) {
    const off = layout ? layout.get(b)?.offset : intelOff;
    if (off !== undefined && xfeatures & (1n << BigInt(b)) && off + len <= size) fill(off, len);
  }
  return buf;
}
