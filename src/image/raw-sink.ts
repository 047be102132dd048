// A raw image streamed to disk (pages-N.img), and the small I/O helpers the image directory
// writer shares with it.
import * as fs from "node:fs";
import { ImageError } from "./errors.js";
import type { FileDigest } from "./manifest.js";

/** A raw image being streamed to disk (pages-N.img). */
export interface RawImageSink {
  readonly name: string;
  /** The open file descriptor, for callers that want pwrite/splice; do not close it yourself. */
  readonly fd: number;
  readonly bytesWritten: number;
  /** Append bytes (all of them; short writes are retried). */
  write(buf: Uint8Array): void;
  /** Append several buffers in one system call where possible. */
  writev(bufs: readonly Uint8Array[]): void;
  /** Close (fsync'd when the sink was made so; the directory writer's one syncfs covers its own). Idempotent. */
  close(): void;
}

export class Sink implements RawImageSink {
  private written = 0;
  private closed = false;

  constructor(
    readonly name: string,
    readonly fd: number,
    private readonly file: string,
    private readonly doFsync: boolean,
    /** Size (and checksum) of what went through write/writev, for the manifest. */
    private readonly digest: FileDigest,
    /** `done`: closed complete (not discarded). */
    private readonly onClose: (done: boolean) => void,
  ) {}

  get bytesWritten(): number {
    return this.written;
  }

  write(buf: Uint8Array): void {
    this.check();
    try {
      writeAll(this.fd, buf);
    } catch (e) {
      throw ioError(this.file, `write failed after ${this.written} bytes`, e);
    }
    this.digest.update(buf);
    this.written += buf.length;
  }

  writev(bufs: readonly Uint8Array[]): void {
    this.check();
    const total = bufs.reduce((n, b) => n + b.length, 0);
    try {
      let done = fs.writevSync(this.fd, bufs as Uint8Array[]);
      // Rare short write: finish the rest buffer by buffer.
      for (const b of bufs) {
        if (done >= b.length) {
          done -= b.length;
          continue;
        }
        writeAll(this.fd, b.subarray(done));
        done = 0;
      }
    } catch (e) {
      throw ioError(this.file, `write failed after ${this.written} bytes`, e);
    }
    for (const b of bufs) this.digest.update(b);
    this.written += total;
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    try {
      // Bytes written through `fd` directly would be missing from the manifest's record.
      const size = fs.fstatSync(this.fd).size;
      if (size !== this.digest.size) throw new ImageError("STATE", this.file, `${size} bytes on disk, ${this.digest.size} written through the sink`);
      this.onClose(true);
      if (this.doFsync) fs.fsyncSync(this.fd);
    } catch (e) {
      throw ioError(this.file, "fsync failed", e);
    } finally {
      fs.closeSync(this.fd);
    }
  }

  /** Close without fsync, for abort(). */
  discard(): void {
    if (this.closed) return;
    this.closed = true;
    this.onClose(false);
    fs.closeSync(this.fd);
  }

  private check(): void {
    if (this.closed) throw new ImageError("STATE", this.file, "raw image already closed");
  }
}

export function writeAll(fd: number, buf: Uint8Array): void {
  let off = 0;
  while (off < buf.length) off += fs.writeSync(fd, buf, off, buf.length - off);
}

export function errno(e: unknown): string | undefined {
  return (e as NodeJS.ErrnoException | undefined)?.code;
}
export function ioError(file: string, what: string, e: unknown): ImageError {
  if (e instanceof ImageError) return e;
  const reason = e instanceof Error ? e.message : String(e);
  return new ImageError("IO", file, `${what}: ${reason}`, undefined, { cause: e });
}
