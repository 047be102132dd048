// Tests of the image format itself (src/image): bad input gives ImageError, payloads after
// entries, image directories written and refused as designed, the XSAVE conversion round-trips,
// the magic table and file names, byte-exact strings.
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import * as fs from "node:fs";
import * as path from "node:path";
import { create, equals, toBinary } from "@bufbuild/protobuf";

import { ImageError } from "../src/image/errors.js";
import { decodeImage, decodeImageAs, encodeImage, type ImageEntry } from "../src/image/io.js";
import { IMG_COMMON_MAGIC, allKinds, imageFileName, kindByMagic, kindByName, kindForFileName } from "../src/image/magic.js";
import { ImageDirReader, ImageDirWriter } from "../src/image/dir.js";
import { imageToJson } from "../src/image/show.js";
import { XsaveError, fpregsFromXsave, unrepresentableXfeatures, xsaveFeatures, xsaveFromFpregs, type XsaveLayout } from "../src/image/xsave.js";
import { bytesToString, stringToBytes } from "../src/image/text-encoding.js";
import { parseIpcMsgPayload } from "../src/image/payload.js";
import { core_entrySchema, core_entry_march } from "../src/image/gen/core_pb.js";
import { user_x86_fpregs_entrySchema } from "../src/image/gen/core-x86_pb.js";
import { pstree_entrySchema } from "../src/image/gen/pstree_pb.js";
import { inventory_entrySchema } from "../src/image/gen/inventory_pb.js";
import { pipe_data_entrySchema } from "../src/image/gen/pipe-data_pb.js";
import { tcp_stream_entrySchema } from "../src/image/gen/tcp-stream_pb.js";
import { ghost_chunk_entrySchema, ghost_file_entrySchema } from "../src/image/gen/ghost-file_pb.js";
import { ipc_msgSchema, ipc_msg_entrySchema } from "../src/image/gen/ipc-msg_pb.js";
import { ipc_desc_entrySchema } from "../src/image/gen/ipc-desc_pb.js";
import { file_entrySchema, fd_types } from "../src/image/gen/fdinfo_pb.js";
import { reg_file_entrySchema } from "../src/image/gen/regfile_pb.js";
import { fown_entrySchema } from "../src/image/gen/fown_pb.js";
import { criu_reqSchema, criu_req_type } from "../src/image/gen/rpc_pb.js";
import { FIXTURES } from "./lib/build.js";

import { PYCRIU_MAGIC, haveFixtures, fixtureImages, tmpDir, expectImageError, sampleCore, syntheticXsave } from "./lib/image-fixtures.js";

describe("bad input gives ImageError", () => {
  const pstree = encodeImage("PSTREE", [create(pstree_entrySchema, { pid: 1, ppid: 0, pgid: 1, sid: 1, threads: [1] })]);

  test("empty file", () => {
    expectImageError(() => decodeImage(Buffer.alloc(0), "pstree.img"), "EMPTY", /pstree\.img: empty file/);
  });

  test("truncated file", () => {
    for (let n = 1; n < pstree.length; n++) {
      const cut = pstree.subarray(0, n);
      if (n === 8) {
        assert.equal(decodeImage(cut, "pstree.img").entries.length, 0, "magic alone is an empty image");
        continue;
      }
      expectImageError(() => decodeImage(cut, "pstree.img"), "TRUNCATED");
    }
    const e = expectImageError(() => decodeImage(pstree.subarray(0, pstree.length - 1), "pstree.img"), "TRUNCATED", /entry 0/);
    assert.equal(e.file, "pstree.img");
    assert.equal(e.offset, 8);
  });

  test("wrong magic", () => {
    const bad = Buffer.from(pstree);
    bad.writeUInt32LE(0x12345678, 4);
    expectImageError(() => decodeImage(bad), "BAD_MAGIC", /unknown image magic 0x12345678/);
    bad.writeUInt32LE(0xdeadbeef, 0);
    expectImageError(() => decodeImage(bad), "BAD_MAGIC", /not a CRIU image/);
    // A valid image under the name of another kind.
    expectImageError(() => decodeImage(pstree, "core-1.img"), "BAD_MAGIC", /magic says PSTREE .* CORE/);
    // The kind's magic without the common one in front.
    expectImageError(() => decodeImage(pstree.subarray(4)), "BAD_MAGIC", /without the leading common magic/);
  });

  test("garbage after a valid header", () => {
    const g = Buffer.concat([pstree.subarray(0, 8), Buffer.from([6, 0, 0, 0, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff])]);
    expectImageError(() => decodeImage(g, "pstree.img"), "GARBAGE", /entry 0: 6 bytes are not a valid pstree_entry/);
    // Parses as protobuf but lacks required fields.
    const h = Buffer.concat([pstree.subarray(0, 8), Buffer.from([2, 0, 0, 0, 0x08, 0x01])]);
    expectImageError(() => decodeImage(h, "pstree.img"), "MISSING_FIELD", /pstree_entry\.ppid/);
    // A huge size.
    const s = Buffer.concat([pstree.subarray(0, 8), Buffer.from([0xff, 0xff, 0xff, 0x7f, 1, 2, 3])]);
    expectImageError(() => decodeImage(s, "pstree.img"), "TRUNCATED", /size says 2147483647 bytes/);
  });

  test("random corruption never escapes as anything but ImageError", { skip: !haveFixtures && "no fixtures" }, () => {
    let seed = 12345;
    const rand = (n: number) => ((seed = (seed * 1103515245 + 12345) & 0x7fffffff) % n);
    for (const file of fixtureImages().slice(0, 12)) {
      const orig = fs.readFileSync(file);
      for (let i = 0; i < 150; i++) {
        const buf = Buffer.from(orig.subarray(0, rand(2) ? orig.length : rand(orig.length + 1)));
        for (let k = rand(4); k >= 0 && buf.length > 0; k--) buf[rand(buf.length)] = rand(256);
        try {
          const img = decodeImage(buf, file);
          encodeImage(img.kind.name, img.entries);
        } catch (e) {
          assert.ok(e instanceof ImageError, `${file} mutation ${i}: ${String(e)}`);
        }
      }
    }
  });

  test("encoding checks messages, required fields and payloads", () => {
    expectImageError(() => encodeImage("NOPE", []), "UNKNOWN_KIND");
    expectImageError(() => encodeImage("PAGES", []), "RAW_IMAGE");
    expectImageError(() => encodeImage("CORE", [create(pstree_entrySchema, {})]), "WRONG_MESSAGE", /core_entry, not a pstree_entry/);
    expectImageError(() => encodeImage("PSTREE", [create(pstree_entrySchema, { pid: 1 })]), "MISSING_FIELD", /pstree_entry\.ppid/);
    expectImageError(
      () => encodeImage("CORE", [create(core_entrySchema, { mtype: core_entry_march.X86_64, threadInfo: { clearTidAddr: 1n } })]),
      "MISSING_FIELD",
      /core_entry\.thread_info\.gpregs/,
    );
    expectImageError(
      () => encodeImage("PIPES_DATA", [{ msg: create(pipe_data_entrySchema, { pipeId: 1, bytes: 4 }), payload: Buffer.from("abc") }]),
      "PAYLOAD",
      /declares 4 payload bytes, 3 given/,
    );
    const pd = encodeImage("PIPES_DATA", [{ msg: create(pipe_data_entrySchema, { pipeId: 1, bytes: 4 }), payload: Buffer.from("abcd") }]);
    expectImageError(() => decodeImage(pd.subarray(0, pd.length - 1), "pipes-data.img"), "TRUNCATED", /declares 4 payload bytes but only 3/);
  });
});

// ---------------------------------------------------------------------------------------------

describe("payload after entries", () => {
  const roundTrip = (kind: string, entries: ImageEntry[]) => {
    const bytes = encodeImage(kind, entries);
    const img = decodeImage(bytes);
    assert.equal(img.kind.name, kind);
    assert.ok(encodeImage(kind, img.entries).equals(bytes));
    return img;
  };

  test("tcp stream: receive queue then send queue", () => {
    const msg = create(tcp_stream_entrySchema, { inqLen: 3, inqSeq: 1, outqLen: 2, outqSeq: 2, optMask: 0, sndWscale: 7, mssClamp: 1460 });
    const img = roundTrip("TCP_STREAM", [{ msg, payload: Buffer.from("inqoq") }]);
    assert.equal(img.entries[0]!.payload!.toString(), "inqoq");
    const json = imageToJson(img).entries[0] as { extra: unknown };
    assert.deepEqual(json.extra, { inq: Buffer.from("inq").toString("base64"), outq: Buffer.from("oq").toString("base64") });
  });

  test("ghost file: whole contents, or chunks", () => {
    const whole = roundTrip("GHOST_FILE", [{ msg: create(ghost_file_entrySchema, { uid: 0, gid: 0, mode: 0o100644 }), payload: Buffer.from("contents\n") }]);
    assert.equal(whole.entries[0]!.payload!.toString(), "contents\n");
    const chunked = roundTrip("GHOST_FILE", [
      { msg: create(ghost_file_entrySchema, { uid: 0, gid: 0, mode: 0o100644, chunks: true, size: 8192n }), payload: Buffer.alloc(0) },
      { msg: create(ghost_chunk_entrySchema, { len: 3n, off: 0n }), payload: Buffer.from("abc") },
      { msg: create(ghost_chunk_entrySchema, { len: 2n, off: 4096n }), payload: Buffer.from("de") },
    ]);
    assert.deepEqual(chunked.entries.map((e) => e.payload!.toString()), ["", "abc", "de"]);
  });

  test("SysV message queue: nested messages padded to 8", () => {
    const text = Buffer.from("hello");
    const inner = toBinary(ipc_msgSchema, create(ipc_msgSchema, { mtype: 1n, msize: text.length }));
    const payload = Buffer.concat([Buffer.from(Uint32Array.of(inner.length).buffer), inner, text, Buffer.alloc(3)]);
    const desc = create(ipc_desc_entrySchema, { key: 1, uid: 0, gid: 0, cuid: 0, cgid: 0, mode: 0o600, id: 0 });
    const msg = create(ipc_msg_entrySchema, { desc, qbytes: 16384, qnum: 1 });
    const img = roundTrip("IPCNS_MSG", [{ msg, payload }]);
    const [rec] = parseIpcMsgPayload(msg, img.entries[0]!.payload!);
    assert.equal(Buffer.from(rec!.text).toString(), "hello");
  });
});

// ---------------------------------------------------------------------------------------------

describe("image directories", () => {
  test("ImageDirReader refuses a directory without inventory.img", () => {
    const dir = tmpDir();
    fs.writeFileSync(path.join(dir, "pstree.img"), encodeImage("PSTREE", []));
    const e = expectImageError(() => ImageDirReader.open(dir), "NO_INVENTORY", /no inventory\.img — not a complete checkpoint/);
    assert.equal(e.file, dir);
    expectImageError(() => ImageDirReader.open(path.join(dir, "nope")), "DIR", /no such image directory/);
  });

  test("missing images are named", () => {
    const dir = path.join(tmpDir(), "d");
    const w = ImageDirWriter.create(dir, { fsync: false });
    w.finish(create(inventory_entrySchema, { imgVersion: 2 }));
    const r = ImageDirReader.open(dir);
    expectImageError(() => r.read("core-7.img"), "MISSING_FILE", /core-7\.img: no such image/);
    assert.equal(r.tryRead("core-7.img"), undefined);
  });

  test("writer: 0700 directory, 0600 files, inventory last, refuses non-empty dirs and misuse", () => {
    const dir = path.join(tmpDir(), "ckpt");
    const w = ImageDirWriter.create(dir);
    assert.equal(fs.statSync(dir).mode & 0o777, 0o700);
    w.writeImage("pstree.img", "PSTREE", [create(pstree_entrySchema, { pid: 5, ppid: 0, pgid: 5, sid: 5 })]);
    w.writeRaw("pages-1.img", [Buffer.alloc(10), Buffer.alloc(6)]);
    assert.equal(fs.statSync(path.join(dir, "pstree.img")).mode & 0o777, 0o600);
    assert.equal(fs.statSync(path.join(dir, "pages-1.img")).size, 16);
    expectImageError(() => w.writeImage("pstree.img", "PSTREE", []), "STATE", /written twice/);
    expectImageError(() => w.writeImage("core-5.img", "MM", []), "UNKNOWN_KIND", /not a file name for a MM image/);
    expectImageError(() => w.writeRaw("inventory.img", Buffer.alloc(1)), "STATE");
    expectImageError(() => w.writeRaw("../escape", Buffer.alloc(1)), "DIR");
    const sink = w.openRaw("pages-2.img");
    expectImageError(() => w.finish(create(inventory_entrySchema, { imgVersion: 2 })), "STATE", /still open \(pages-2\.img\)/);
    assert.ok(!fs.existsSync(path.join(dir, "inventory.img")));
    sink.close();
    w.finish(create(inventory_entrySchema, { imgVersion: 2 }));
    assert.deepEqual(w.written, ["pstree.img", "pages-1.img", "pages-2.img", "cryo-manifest.json", "inventory.img"]);
    assert.equal(fs.statSync(path.join(dir, "inventory.img")).mode & 0o777, 0o600);
    assert.equal(fs.statSync(path.join(dir, "cryo-manifest.json")).mode & 0o777, 0o600);
    assert.deepEqual(fs.readdirSync(dir).sort(), ["cryo-manifest.json", "inventory.img", "pages-1.img", "pages-2.img", "pstree.img"]);
    expectImageError(() => w.writeRaw("pages-3.img", Buffer.alloc(1)), "STATE", /finished/);
    expectImageError(() => ImageDirWriter.create(dir), "DIR", /not empty/);
    const file = path.join(dir, "pstree.img");
    expectImageError(() => ImageDirWriter.create(file), "DIR", /not a directory/);
  });

  test("writer accepts an existing empty directory; abort removes what it wrote", () => {
    const dir = tmpDir();
    const w = ImageDirWriter.create(dir, { fsync: false });
    w.writeImage("pstree.img", "PSTREE", []);
    w.openRaw("pages-1.img").write(Buffer.alloc(100));
    w.abort();
    assert.deepEqual(fs.readdirSync(dir), []);
    assert.ok(fs.existsSync(dir), "a directory the writer did not create stays");

    const made = path.join(dir, "new");
    const w2 = ImageDirWriter.create(made, { fsync: false });
    w2.writeImage("pstree.img", "PSTREE", []);
    w2.finish(create(inventory_entrySchema, { imgVersion: 2 }));
    w2.abort();
    assert.ok(!fs.existsSync(made), "a directory the writer made is removed");
  });
});

// ---------------------------------------------------------------------------------------------


describe("XSAVE <-> CRIU fpregs", () => {
  test("round trip of a synthetic AVX-512 + PKRU buffer", () => {
    const buf = syntheticXsave(2696, 0x2e7n, 0x2a7n);
    const fp = fpregsFromXsave(buf);
    assert.equal(fp.mxcsr, 0x1f80);
    assert.equal(fp.stSpace.length, 32);
    assert.equal(fp.xmmSpace.length, 64);
    const x = fp.xsave!;
    assert.equal(x.xstateBv, 0x2a7n);
    assert.equal(x.ymmhSpace.length, 64);
    assert.equal(x.opmaskReg.length, 8);
    assert.equal(x.zmmUpper.length, 64);
    assert.equal(x.hi16Zmm.length, 128);
    assert.equal(x.pkru.length, 2);
    assert.equal(x.bndregState.length, 0);
    const back = xsaveFromFpregs(fp, buf.length, xsaveFeatures(buf)!.xfeatures);
    assert.ok(back.equals(buf), "xsave -> fpregs -> xsave is byte-exact");
  });

  test("the entry survives a trip through an image and back", () => {
    const fp = fpregsFromXsave(syntheticXsave(2696, 0x2e7n, 0x2a3n));
    const core = sampleCore();
    core.threadInfo!.fpregs = fp;
    const [again] = decodeImageAs(encodeImage("CORE", [core]), core_entrySchema);
    assert.ok(equals(core_entrySchema, again!, core));
    const buf = xsaveFromFpregs(again!.threadInfo!.fpregs!, 2696);
    assert.ok(equals(user_x86_fpregs_entrySchema, fpregsFromXsave(buf), fp));
  });

  test("CRIU 4.2's fpregs convert to a buffer and back unchanged", { skip: !haveFixtures && "no fixtures" }, () => {
    const file = path.join(FIXTURES, "simple-sleep", fs.readdirSync(path.join(FIXTURES, "simple-sleep")).find((n) => n.startsWith("core-"))!);
    const [core] = decodeImageAs(fs.readFileSync(file), core_entrySchema, file);
    const fp = core!.threadInfo!.fpregs!;
    const buf = xsaveFromFpregs(fp, 2696);
    assert.equal(buf.readBigUInt64LE(512), fp.xsave!.xstateBv);
    assert.ok(equals(user_x86_fpregs_entrySchema, fpregsFromXsave(buf), fp));
  });

  test("AMD layout: components at the CPU's offsets; entries move between layouts", () => {
    // Zen 4 (this project's machines): no MPX, AVX-512 packed right after AVX, no PKU here.
    const amd: XsaveLayout = new Map([[2, { offset: 576 }], [5, { offset: 832 }], [6, { offset: 896 }], [7, { offset: 1408 }]]);
    const buf = syntheticXsave(2432, 0xe7n, 0xa3n, amd);
    const fp = fpregsFromXsave(buf, { layout: amd });
    assert.equal(fp.xsave!.opmaskReg[0], buf.readBigUInt64LE(832));
    assert.ok(xsaveFromFpregs(fp, 2432, 0xe7n, amd).equals(buf));
    // The same entry in Intel's layout: the words move, the values do not.
    const intel = xsaveFromFpregs(fp, 2696);
    assert.ok(intel.subarray(1088, 1152).equals(buf.subarray(832, 896)));
    assert.ok(intel.subarray(1664, 2688).equals(buf.subarray(1408, 2432)));
    // A CPU without a component the image uses is refused.
    assert.throws(() => xsaveFromFpregs(fp, 2432, undefined, new Map([[2, { offset: 576 }]])), /no such component/);
  });

  test("state the entry cannot hold is not dropped silently", () => {
    const amx = syntheticXsave(11008, 0x602e7n, 0x600a3n);
    assert.deepEqual(unrepresentableXfeatures(amx), [17, 18]);
    assert.throws(() => fpregsFromXsave(amx), (e: unknown) => e instanceof XsaveError && /17, 18.*AMX/.test(e.message));
    assert.equal(fpregsFromXsave(amx, { allowLoss: true }).xsave!.xstateBv, 0xa3n);
    // AMX enabled but in init state is fine.
    assert.deepEqual(unrepresentableXfeatures(syntheticXsave(11008, 0x602e7n, 0x2a3n)), []);
  });

  test("restoring needs room and support for the components in use", () => {
    const fp = fpregsFromXsave(syntheticXsave(2696, 0x2e7n, 0x2e7n));
    assert.throws(() => xsaveFromFpregs(fp, 832), (e: unknown) => e instanceof XsaveError && /does not fit/.test(e.message));
    assert.throws(() => xsaveFromFpregs(fp, 2696, 0x7n), (e: unknown) => e instanceof XsaveError && /does not enable/.test(e.message));
    // An FXSAVE-only area gives an entry without xsave, and back.
    const legacy = syntheticXsave(512, 0n, 0n).subarray(0, 512);
    const fx = fpregsFromXsave(legacy);
    assert.equal(fx.xsave, undefined);
    assert.ok(xsaveFromFpregs(fx, 512).subarray(0, 416).equals(legacy.subarray(0, 416)));
  });
});

// ---------------------------------------------------------------------------------------------

describe("magic table and file names", () => {
  test("magics match pycriu's table", { skip: !fs.existsSync(PYCRIU_MAGIC) && "no pycriu" }, () => {
    const text = fs.readFileSync(PYCRIU_MAGIC, "utf8");
    const pairs = [...text.matchAll(/by_name\['(\w+)'\] = (\d+)/g)].map((m) => [m[1]!, Number(m[2])] as const);
    assert.ok(pairs.length > 60);
    for (const [name, value] of pairs) {
      if (name === "IMG_COMMON") assert.equal(IMG_COMMON_MAGIC, value);
      if (["CRTOOLS_IMAGES_V1_1", "IMG_COMMON", "IMG_SERVICE", "KDAT"].includes(name)) continue;
      assert.equal(kindByName(name)?.magic, value, name);
      assert.equal(kindByMagic(value)?.name, name);
    }
  });

  test("file names map to kinds", () => {
    const cases: [string, string | undefined][] = [
      ["core-123.img", "CORE"],
      ["/some/dir/mm-1.img", "MM"],
      ["pagemap-5.img", "PAGEMAP"],
      ["pagemap-shmem-5.img", "PAGEMAP"],
      ["pages-1.img", "PAGES"],
      ["fdinfo-2.img", "FDINFO"],
      ["inventory.img", "INVENTORY"],
      ["stats-dump", "STATS"],
      ["stats-restore", "STATS"],
      ["irmap-cache", "IRMAP_CACHE"],
      ["ghost-file-1a.img", "GHOST_FILE"],
      ["tcp-stream-ff00.img", "TCP_STREAM"],
      ["ipcns-shm-9.img", "IPCNS_SHM"],
      ["tmpfs-dev-3.tar.gz.img", "TMPFS_DEV"],
      ["tmpfs-3.tar.gz.img", "TMPFS_IMG"],
      ["signal-p-4.img", "SIGNAL"],
      ["core-.img", undefined],
      ["core-12.img.bak", undefined],
      ["random.txt", undefined],
    ];
    for (const [name, kind] of cases) assert.equal(kindForFileName(name)?.name, kind, name);
    assert.equal(imageFileName("CORE", 123), "core-123.img");
    assert.equal(imageFileName("PAGEMAP", 5, 1), "pagemap-shmem-5.img");
    assert.equal(imageFileName("GHOST_FILE", 26), "ghost-file-1a.img");
    assert.equal(imageFileName("INVENTORY"), "inventory.img");
    for (const k of allKinds()) assert.equal(kindForFileName(imageFileName(k.name, k.files[0]!.includes("%s") ? "dump" : 1)), k, k.name);
  });

  test("rpc schema is CRIU's wire format", () => {
    assert.deepEqual([...toBinary(criu_reqSchema, create(criu_reqSchema, { type: criu_req_type.VERSION }))], [0x08, 0x0a]);
  });
});

describe("strings are byte-exact even when not UTF-8", () => {
  test("a path with invalid UTF-8 survives decode and encode", () => {
    const raw = Buffer.from([0x2f, 0x74, 0xff, 0xc3, 0x28, 0xed, 0xa0, 0x80, 0xe2, 0x82, 0xac]); // "/t" + junk + "€"
    const name = bytesToString(raw);
    assert.ok(Buffer.from(stringToBytes(name)).equals(raw));
    const entry = create(file_entrySchema, {
      type: fd_types.REG,
      id: 1,
      reg: create(reg_file_entrySchema, { id: 1, flags: 0, pos: 0n, fown: create(fown_entrySchema, { uid: 0, euid: 0, signum: 0, pidType: 0, pid: 0 }), name }),
    });
    const bytes = encodeImage("FILES", [entry]);
    assert.ok(bytes.includes(raw), "the raw bytes are on disk");
    const [back] = decodeImage(bytes, "files.img").messages as (typeof entry)[];
    assert.equal(back!.reg!.name, name);
    assert.ok(encodeImage("FILES", [back!]).equals(bytes));
    assert.equal(bytesToString(Buffer.from("plain ascii / ünïcödé")), "plain ascii / ünïcödé");
  });
});
