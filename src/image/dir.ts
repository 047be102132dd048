// An image directory: writing one so that a crash never leaves something that looks like a
// complete checkpoint, and reading one back with errors that name the missing or bad file.
//
// Writer rules (DESIGN.md "Image format"):
//  - the directory is created 0700 (or an existing empty directory is used as is);
//  - every file is created O_EXCL, mode 0600 (images hold process memory), and fsynced;
//  - inventory.img is written last, via a temporary name and rename, after the directory itself
//    has been fsynced: a directory with inventory.img has all its other files on disk;
//  - abort() removes everything the writer created (inventory.img first).
// Everything here is synchronous: the dump runs on the tracer thread anyway, and sync calls keep
// the order of writes, fsyncs and renames obvious.

import * as fs from "node:fs";
import * as path from "node:path";
import type { Message } from "@bufbuild/protobuf";
import type { GenMessage } from "@bufbuild/protobuf/codegenv2";
import { inventory_entrySchema, type inventory_entry } from "./gen/inventory_pb.js";
import { ImageError } from "./errors.js";
import { decodeImage, decodeImageAs, encodeImage, type DecodedImage, type ImageEntry } from "./io.js";
import { CRTOOLS_IMAGES_V1_1, kindByName, kindForFileName } from "./magic.js";
import { FileDigest, MANIFEST_FILE, manifestBytes, type ExternalIds, type ManifestFile } from "./manifest.js";
import { Sink, writeAll, errno, ioError, type RawImageSink } from "./raw-sink.js";
import { sys } from "../sys/index.js";

export type { RawImageSink } from "./raw-sink.js";

export const INVENTORY_FILE = "inventory.img";
const INVENTORY_TMP = ".inventory.img.tmp";

export interface WriterOptions {
  /** fsync every file and the directory (default true). Off only for throwaway test output. */
  fsync?: boolean;
  /** Checksum streamed raw images (pages) in the manifest too, not only their sizes. */
  hashRaw?: boolean;
}

type WriterState = "open" | "finished" | "aborted";

export class ImageDirWriter {
  private state: WriterState = "open";
  private readonly files: string[] = [];
  /** The same names, to find one at once (a dump with 1000 TCP connections writes 2000+). */
  private readonly names = new Set<string>();
  /** Files created ahead by reserve() and not written yet. */
  private readonly reserved = new Set<string>();
  private readonly sinks = new Set<Sink>();
  /** What cryo-manifest.json will say about each file written. */
  private readonly digests = new Map<string, ManifestFile>();
  private external: ExternalIds | undefined;
  /**
   * Files written without their own fsync (every image but the manifest and the inventory): one
   * syncfs covers them in finish(). An fsync each cost a journal commit each: a tree of 50 tasks
   * writes ~360 files, and their fsyncs were 0.28 s of a 1.15 s dump.
   */
  private unsynced = 0;

  private constructor(
    readonly dir: string,
    private readonly createdDir: boolean,
    private readonly doFsync: boolean,
    private readonly hashRaw: boolean,
  ) {}

  /** Create `dir` with mode 0700, or take an existing empty directory. Its parent must exist. */
  static create(dir: string, opts: WriterOptions = {}): ImageDirWriter {
    let created = false;
    try {
      fs.mkdirSync(dir, { mode: 0o700 });
      created = true;
    } catch (e) {
      const code = errno(e);
      if (code === "ENOENT") throw new ImageError("DIR", dir, "cannot create the image directory: its parent does not exist", undefined, { cause: e });
      if (code !== "EEXIST") throw ioError(dir, "cannot create the image directory", e);
      let st: fs.Stats;
      try {
        st = fs.statSync(dir);
      } catch (e2) {
        throw ioError(dir, "cannot stat the image directory", e2);
      }
      if (!st.isDirectory()) throw new ImageError("DIR", dir, "exists and is not a directory");
      const present = fs.readdirSync(dir);
      if (present.length > 0) {
        const shown = present.slice(0, 5).join(", ") + (present.length > 5 ? ", ..." : "");
        throw new ImageError("DIR", dir, `image directory is not empty (${present.length} entries: ${shown}); refusing to mix checkpoints`);
      }
    }
    return new ImageDirWriter(dir, created, opts.fsync ?? true, opts.hashRaw ?? false);
  }

  /** Names of the files written so far, in order (inventory.img last once finished). */
  get written(): readonly string[] {
    return this.files;
  }

  /** Path of a file in the directory. */
  path(name: string): string {
    return path.join(this.dir, name);
  }

  /**
   * Encode and write one image. `kindName` must agree with the file name (core-1.img is CORE).
   * Entries are messages, or {msg, payload} for kinds with raw payload (see payload.ts).
   */
  writeImage(fileName: string, kindName: string, entries: ReadonlyArray<Message | ImageEntry>): void {
    this.checkWritable(fileName);
    const kind = kindByName(kindName);
    if (kind === undefined) throw new ImageError("UNKNOWN_KIND", this.path(fileName), `no image kind named ${kindName}`);
    if (kind.name === "INVENTORY") throw new ImageError("STATE", this.path(fileName), "inventory.img is written by finish(), last");
    const named = kindForFileName(fileName);
    if (named !== kind) {
      throw new ImageError("UNKNOWN_KIND", this.path(fileName), `not a file name for a ${kind.name} image (expected ${kind.files.join(" or ")})`);
    }
    this.writeFile(fileName, [encodeImage(kind.name, entries, this.path(fileName))], true);
  }

  /** Write a raw file (pages, a tarball, ...) in one go. */
  writeRaw(name: string, data: Uint8Array | readonly Uint8Array[], opts: { syncLater?: boolean } = {}): void {
    this.checkWritable(name);
    this.writeFile(name, data instanceof Uint8Array ? [data] : data, opts.syncLater);
  }

  /**
   * Creates these files now, empty, for writeRaw to fill later: names known before their contents,
   * created while it costs nothing to wait (a tree's tcp-stream images, before the freeze: a
   * create on a busy ext4 took 0.1 to 0.7 ms, and a dump with 1000 connections makes 2000). Those
   * never written are removed by finish(), the rest as any file by abort().
   */
  reserve(names: Iterable<string>): void {
    for (const n of names) {
      this.checkWritable(n);
      if (this.reserved.has(n)) throw new ImageError("STATE", this.path(n), "written twice");
      fs.closeSync(this.createFile(n));
      this.reserved.add(n);
    }
  }

  /** Records, in the manifest, the sessions and groups of the tree led from outside it. */
  noteExternal(ids: ExternalIds): void {
    this.external = { sessions: [...new Set(ids.sessions)].sort((a, b) => a - b), groups: [...new Set(ids.groups)].sort((a, b) => a - b) };
  }

  /** Open a raw file for streaming writes, e.g. pages-N.img while pages are copied out. */
  openRaw(name: string, opts: { direct?: boolean } = {}): RawImageSink {
    this.checkWritable(name);
    const fd = this.createFile(name, opts.direct ? fs.constants.O_DIRECT : 0);
    const digest = new FileDigest(this.hashRaw ? "crc32" : "size");
    const sink = new Sink(name, fd, this.path(name), false, digest, (done) => {
      this.sinks.delete(sink);
      if (done) this.digests.set(name, digest.entry());
      if (done) this.unsynced++;
    });
    this.sinks.add(sink);
    return sink;
  }

  /**
   * Complete the checkpoint: write cryo-manifest.json (every file so far, with its size and
   * checksum), syncfs (every file and directory entry durable), then write inventory.img
   * (temporary name, fsync, rename, fsync the directory). Raw files must all be closed.
   */
  finish(inventory: inventory_entry): void {
    this.checkState(INVENTORY_FILE);
    if (this.sinks.size > 0) {
      const open = [...this.sinks].map((s) => s.name).join(", ");
      throw new ImageError("STATE", this.dir, `cannot finish: raw images still open (${open})`);
    }
    const bytes = encodeImage("INVENTORY", [inventory], this.path(INVENTORY_FILE));
    // inventory.img is written after the manifest, but its bytes are known now: cover it too.
    const inv = new FileDigest("sha256");
    inv.update(bytes);
    this.digests.set(INVENTORY_FILE, inv.entry());
    for (const n of this.reserved) this.unreserve(n);
    // The manifest is made durable with every image and their directory entries by the one
    // syncfs (which writes the filesystem's metadata too): an fsync of it and of the directory
    // were two more journal commits to wait for, a good part of a small dump's time.
    this.writeFile(MANIFEST_FILE, [manifestBytes(this.digests, this.external)], true);
    if (this.doFsync) this.syncFs();
    const tmp = this.path(INVENTORY_TMP);
    this.writeFile(INVENTORY_TMP, [bytes]);
    try {
      fs.renameSync(tmp, this.path(INVENTORY_FILE));
    } catch (e) {
      throw ioError(this.path(INVENTORY_FILE), "cannot rename the inventory into place", e);
    }
    this.files[this.files.length - 1] = INVENTORY_FILE;
    this.syncDir();
    this.state = "finished";
  }

  /** Remove every file this writer created (inventory.img first), and the directory if it made it. */
  abort(): void {
    if (this.state === "aborted") return;
    this.state = "aborted";
    for (const s of [...this.sinks]) s.discard();
    const names = [...this.files].reverse();
    for (const n of [INVENTORY_FILE, ...names.filter((n) => n !== INVENTORY_FILE), INVENTORY_TMP]) {
      try {
        fs.unlinkSync(this.path(n));
      } catch {
        // already gone (or never renamed into place)
      }
    }
    this.files.length = 0;
    this.names.clear();
    this.reserved.clear();
    if (this.createdDir) {
      try {
        fs.rmdirSync(this.dir);
      } catch {
        // someone else put files there: leave it
      }
    }
  }

  private checkState(name: string): void {
    if (this.state !== "open") throw new ImageError("STATE", this.path(name), `image directory writer is ${this.state}`);
  }

  private checkWritable(name: string): void {
    this.checkState(name);
    if (name === "" || name === "." || name === ".." || name.includes("/") || name.includes("\0")) {
      throw new ImageError("DIR", this.path(name), "image file names are plain names inside the directory");
    }
    if (name === INVENTORY_FILE || name === INVENTORY_TMP || name === MANIFEST_FILE) {
      throw new ImageError("STATE", this.path(name), "inventory.img is written by finish(), last");
    }
    if (this.names.has(name) && !this.reserved.has(name)) throw new ImageError("STATE", this.path(name), "written twice");
  }

  private unreserve(name: string): void {
    try {
      fs.unlinkSync(this.path(name));
    } catch (e) {
      throw ioError(this.path(name), "cannot remove an image file reserved and never written", e);
    }
    this.files.splice(this.files.indexOf(name), 1);
    this.names.delete(name);
    this.reserved.delete(name);
  }

  /**
   * `extra` open flags: O_DIRECT for page data, which bypasses the page cache (measured here:
   * 2.3 GB/s against 0.35-1.4 GB/s buffered); its writes must then be 4 KiB-aligned.
   */
  private createFile(name: string, extra = 0): number {
    try {
      const { O_WRONLY, O_CREAT, O_EXCL } = fs.constants;
      if (this.reserved.delete(name)) return fs.openSync(this.path(name), O_WRONLY | extra);
      let fd: number;
      try {
        fd = fs.openSync(this.path(name), O_WRONLY | O_CREAT | O_EXCL | extra, 0o600);
      } catch (e) {
        // A filesystem without O_DIRECT says EINVAL: write through the page cache there.
        if (!(extra & fs.constants.O_DIRECT) || errno(e) !== "EINVAL") throw e;
        fd = fs.openSync(this.path(name), O_WRONLY | O_CREAT | O_EXCL | (extra & ~fs.constants.O_DIRECT), 0o600);
      }
      this.files.push(name);
      this.names.add(name);
      return fd;
    } catch (e) {
      throw ioError(this.path(name), "cannot create image file", e);
    }
  }

  private syncFs(): void {
    const fd = fs.openSync(this.dir, fs.constants.O_RDONLY | fs.constants.O_DIRECTORY);
    try {
      sys("syncfs", [fd], `syncfs of ${this.dir}`);
    } finally {
      fs.closeSync(fd);
    }
    this.unsynced = 0;
  }

  private writeFile(name: string, bufs: readonly Uint8Array[], syncLater = false): void {
    const fd = this.createFile(name);
    const digest = new FileDigest("sha256");
    try {
      for (const b of bufs) {
        writeAll(fd, b);
        digest.update(b);
      }
      if (name !== INVENTORY_TMP && name !== MANIFEST_FILE) this.digests.set(name, digest.entry());
      if (this.doFsync && !syncLater) fs.fsyncSync(fd);
      if (syncLater) this.unsynced++;
    } catch (e) {
      throw ioError(this.path(name), "cannot write image file", e);
    } finally {
      fs.closeSync(fd);
    }
  }

  private syncDir(): void {
    if (!this.doFsync) return;
    let fd: number | undefined;
    try {
      fd = fs.openSync(this.dir, fs.constants.O_RDONLY | fs.constants.O_DIRECTORY);
      fs.fsyncSync(fd);
    } catch (e) {
      throw ioError(this.dir, "cannot fsync the image directory", e);
    } finally {
      if (fd !== undefined) fs.closeSync(fd);
    }
  }
}

/** A checkpoint directory opened for reading. Refuses directories without inventory.img. */
export class ImageDirReader {
  private constructor(
    readonly dir: string,
    /** The decoded inventory.img. */
    readonly inventory: inventory_entry,
  ) {}

  static open(dir: string): ImageDirReader {
    let st: fs.Stats;
    try {
      st = fs.statSync(dir);
    } catch (e) {
      if (errno(e) === "ENOENT") throw new ImageError("DIR", dir, "no such image directory", undefined, { cause: e });
      throw ioError(dir, "cannot stat the image directory", e);
    }
    if (!st.isDirectory()) throw new ImageError("DIR", dir, "not a directory");
    const invPath = path.join(dir, INVENTORY_FILE);
    try {
      fs.accessSync(invPath, fs.constants.R_OK);
    } catch (e) {
      const code = errno(e);
      if (code === "ENOENT") throw new ImageError("NO_INVENTORY", dir, `no ${INVENTORY_FILE} — not a complete checkpoint`);
      if (code === "EACCES") throw new ImageError("IO", invPath, "permission denied (no read access to the image directory or its inventory)", undefined, { cause: e });
      throw ioError(invPath, "cannot read the inventory", e);
    }
    const [inventory] = decodeImageAs(readFile(invPath), inventory_entrySchema, invPath);
    if (inventory === undefined) throw new ImageError("NO_INVENTORY", invPath, "inventory.img has no entry — not a complete checkpoint");
    if (inventory.imgVersion !== CRTOOLS_IMAGES_V1_1) {
      throw new ImageError("VERSION", invPath, `image format version ${inventory.imgVersion}; cryo reads version ${CRTOOLS_IMAGES_V1_1} images`);
    }
    return new ImageDirReader(dir, inventory);
  }

  path(name: string): string {
    return path.join(this.dir, name);
  }

  exists(name: string): boolean {
    return fs.existsSync(this.path(name));
  }

  /** Names of all files in the directory, sorted. */
  list(): string[] {
    return fs.readdirSync(this.dir).sort();
  }

  /** Decode an image; the kind comes from the file name and magic. */
  readImage(name: string): DecodedImage {
    return decodeImage(this.readRaw(name), this.path(name));
  }

  /** The entry messages of an image (head entry included, e.g. pagemap_head first). */
  read(name: string): Message[] {
    return this.readImage(name).messages;
  }

  /** Typed entries of an image holding one message type: readAs("core-1.img", core_entrySchema). */
  readAs<T extends Message>(name: string, schema: GenMessage<T>): T[] {
    return decodeImageAs(this.readRaw(name), schema, this.path(name));
  }

  /** Like read(), but undefined when the file does not exist (CRIU omits some empty images). */
  tryRead(name: string): Message[] | undefined {
    return this.exists(name) ? this.read(name) : undefined;
  }

  /** The bytes of a file, e.g. a raw image. */
  readRaw(name: string): Buffer {
    return readFile(this.path(name));
  }
}

function readFile(file: string): Buffer {
  try {
    return fs.readFileSync(file);
  } catch (e) {
    if (errno(e) === "ENOENT") throw new ImageError("MISSING_FILE", file, "no such image in the checkpoint", undefined, { cause: e });
    if (errno(e) === "EACCES") throw new ImageError("IO", file, "permission denied", undefined, { cause: e });
    throw ioError(file, "cannot read image", e);
  }
}
