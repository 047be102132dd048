// Image file framing: magic word(s), then [u32 little-endian size][proto2 message] repeated to
// end of file, with raw payload after the entries of a few kinds (payload.ts).
//
//   inventory.img          INVENTORY_MAGIC                 entries...
//   stats-*, irmap-cache   IMG_SERVICE_MAGIC  KIND_MAGIC   entries...
//   everything else        IMG_COMMON_MAGIC   KIND_MAGIC   entries...
//   pages-N.img etc.       raw bytes, no header (not handled here: see dir.ts readRaw/openRaw)
//
// Decoding never trusts the file: every size is checked against what is left, the message bytes
// must parse, and proto2 required fields must be set (CRIU refuses images without them too).
// Any problem is an ImageError naming the file, the entry and the offset. Unknown fields written
// by newer CRIU versions are kept in each message ($unknown) and written back by encodeImage.

import { fromBinary, isFieldSet, toBinary, type DescMessage, type Message } from "@bufbuild/protobuf";
import type { GenMessage } from "@bufbuild/protobuf/codegenv2";
import { FeatureSet_FieldPresence } from "@bufbuild/protobuf/wkt";
import { ImageError } from "./errors.js";
import {
  IMG_COMMON_MAGIC,
  IMG_SERVICE_MAGIC,
  hexMagic,
  kindByMagic,
  kindByName,
  kindForFileName,
  type ImageKind,
} from "./magic.js";
import { installLosslessTextEncoding } from "./text-encoding.js";

installLosslessTextEncoding();

/** One entry of an image: the message and, for kinds that have one, the raw bytes after it. */
export interface ImageEntry {
  msg: Message;
  /**
   * Raw bytes that follow the message in the file (pipe data, socket queue, TCP queues, ghost
   * file contents, ...), padding included. Set (possibly empty) for every entry of a kind with
   * payload, undefined otherwise. When decoding, this is a view into the input buffer.
   */
  payload?: Buffer;
}

export interface DecodedImage {
  kind: ImageKind;
  entries: ImageEntry[];
  /** The same messages as entries[i].msg, for kinds without payload. */
  messages: Message[];
}

const MAGIC_SIZE: Record<ImageKind["framing"], number> = { inventory: 4, common: 8, service: 8, raw: 0 };

/** Identify the kind of an image from its magic (and file name, when given). Returns where entries start. */
export function readImageHeader(buf: Uint8Array, fileName?: string): { kind: ImageKind; offset: number } {
  const file = fileName;
  const named = fileName === undefined ? undefined : kindForFileName(fileName);
  if (named?.framing === "raw") {
    throw new ImageError("RAW_IMAGE", file, `a raw ${named.name} image: no magic and no entries to decode`);
  }
  if (buf.length === 0) throw new ImageError("EMPTY", file, "empty file (no magic)");
  if (buf.length < 4) throw new ImageError("TRUNCATED", file, `only ${buf.length} bytes, too short for a magic`, 0);
  const view = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  const first = view.getUint32(0, true);

  let kind: ImageKind | undefined;
  if (first === IMG_COMMON_MAGIC || first === IMG_SERVICE_MAGIC) {
    const which = first === IMG_COMMON_MAGIC ? "common" : "service";
    if (buf.length < 8) throw new ImageError("TRUNCATED", file, `${which} magic but no image magic after it`, 4);
    const second = view.getUint32(4, true);
    kind = kindByMagic(second);
    if (kind === undefined || kind.framing === "inventory") {
      throw new ImageError("BAD_MAGIC", file, `unknown image magic ${hexMagic(second)} after the ${which} magic`, 4);
    }
    if (kind.framing !== which) {
      throw new ImageError("BAD_MAGIC", file, `${kind.name} image must start with the ${kind.framing} magic, not the ${which} one`, 0);
    }
  } else {
    kind = kindByMagic(first);
    if (kind === undefined) {
      throw new ImageError("BAD_MAGIC", file, `not a CRIU image: first word ${hexMagic(first)} is no known magic`, 0);
    }
    if (kind.framing !== "inventory") {
      throw new ImageError("BAD_MAGIC", file, `${kind.name} magic without the leading ${kind.framing} magic (old v1.0 image?)`, 0);
    }
  }
  if (named !== undefined && named !== kind) {
    throw new ImageError("BAD_MAGIC", file, `magic says ${kind.name} but the file name is that of a ${named.name} image`, 0);
  }
  return { kind, offset: MAGIC_SIZE[kind.framing] };
}

/** Decode a whole image file. `fileName` is used for the kind check and in error messages. */
export function decodeImage(buf: Uint8Array, fileName?: string): DecodedImage {
  const { kind, offset: start } = readImageHeader(buf, fileName);
  const file = fileName;
  const data = Buffer.isBuffer(buf) ? buf : Buffer.from(buf.buffer, buf.byteOffset, buf.byteLength);
  const entries: ImageEntry[] = [];
  let off = start;
  while (off < data.length) {
    const i = entries.length;
    const at = off;
    if (data.length - off < 4) {
      throw new ImageError("TRUNCATED", file, `entry ${i}: ${data.length - off} stray bytes where a 4-byte size should be`, at);
    }
    const size = data.readUInt32LE(off);
    off += 4;
    if (size > data.length - off) {
      throw new ImageError("TRUNCATED", file, `entry ${i}: size says ${size} bytes but only ${data.length - off} are left (truncated or garbage)`, at);
    }
    const schema = entrySchema(kind, i);
    let msg: Message;
    try {
      msg = fromBinary(schema, data.subarray(off, off + size));
    } catch (e) {
      throw new ImageError("GARBAGE", file, `entry ${i}: ${size} bytes are not a valid ${schema.typeName}: ${errText(e)}`, at, { cause: e });
    }
    const missing = missingRequired(schema, msg);
    if (missing !== undefined) {
      throw new ImageError("MISSING_FIELD", file, `entry ${i}: required field ${missing} is not set (garbage, or not a ${schema.typeName})`, at);
    }
    off += size;
    const entry: ImageEntry = { msg };
    if (kind.payload !== undefined) {
      let n: number;
      try {
        n = kind.payload(msg, data, off);
      } catch (e) {
        throw new ImageError("PAYLOAD", file, `entry ${i}: bad payload after the ${schema.typeName}: ${errText(e)}`, off, { cause: e });
      }
      if (!(n >= 0) || n > data.length - off) {
        throw new ImageError("TRUNCATED", file, `entry ${i}: ${schema.typeName} declares ${n} payload bytes but only ${data.length - off} are left`, off);
      }
      entry.payload = data.subarray(off, off + n);
      off += n;
    }
    entries.push(entry);
  }
  return { kind, entries, messages: entries.map((e) => e.msg) };
}

/**
 * Decode an image whose entries are all of one message type, typed: for example
 * decodeImageAs(buf, core_entrySchema, "core-1.img"). Refuses kinds with a head entry or payload.
 */
export function decodeImageAs<T extends Message>(buf: Uint8Array, schema: GenMessage<T>, fileName?: string): T[] {
  const img = decodeImage(buf, fileName);
  if (img.kind.schema !== schema || img.kind.headSchema !== undefined) {
    throw new ImageError("WRONG_MESSAGE", fileName, `${img.kind.name} image does not hold only ${schema.typeName} entries`);
  }
  return img.messages as T[];
}

/** Encode an image of the named kind from messages, or {msg, payload} entries for payload kinds. */
export function encodeImage(kindName: string, entries: ReadonlyArray<Message | ImageEntry>, fileName?: string): Buffer {
  const kind = kindByName(kindName);
  const file = fileName;
  if (kind === undefined) throw new ImageError("UNKNOWN_KIND", file, `no image kind named ${kindName}`);
  if (kind.framing === "raw") throw new ImageError("RAW_IMAGE", file, `${kind.name} is a raw image; write its bytes directly`);
  const chunks: Uint8Array[] = [];
  const header = Buffer.alloc(MAGIC_SIZE[kind.framing]);
  if (kind.framing === "inventory") header.writeUInt32LE(kind.magic, 0);
  else {
    header.writeUInt32LE(kind.framing === "common" ? IMG_COMMON_MAGIC : IMG_SERVICE_MAGIC, 0);
    header.writeUInt32LE(kind.magic, 4);
  }
  chunks.push(header);
  entries.forEach((e, i) => {
    const { msg, payload } = isImageEntry(e) ? e : { msg: e, payload: undefined };
    const schema = entrySchema(kind, i);
    if (msg.$typeName !== schema.typeName) {
      throw new ImageError("WRONG_MESSAGE", file, `entry ${i} of a ${kind.name} image must be a ${schema.typeName}, not a ${msg.$typeName}`);
    }
    const missing = missingRequired(schema, msg);
    if (missing !== undefined) throw new ImageError("MISSING_FIELD", file, `entry ${i}: required field ${missing} is not set`);
    let bytes: Uint8Array;
    try {
      bytes = toBinary(schema, msg);
    } catch (err) {
      throw new ImageError("GARBAGE", file, `entry ${i}: cannot encode ${schema.typeName}: ${errText(err)}`, undefined, { cause: err });
    }
    const size = Buffer.alloc(4);
    size.writeUInt32LE(bytes.length, 0);
    chunks.push(size, bytes);
    if (kind.payload !== undefined) {
      const p = payload ?? Buffer.alloc(0);
      let want: number;
      try {
        want = kind.payload(msg, p, 0);
      } catch (err) {
        throw new ImageError("PAYLOAD", file, `entry ${i}: payload does not match the ${schema.typeName}: ${errText(err)}`, undefined, { cause: err });
      }
      if (want !== p.length) {
        throw new ImageError("PAYLOAD", file, `entry ${i}: ${schema.typeName} declares ${want} payload bytes, ${p.length} given`);
      }
      chunks.push(p);
    } else if (payload !== undefined && payload.length > 0) {
      throw new ImageError("PAYLOAD", file, `entry ${i}: ${kind.name} images carry no payload after entries`);
    }
  });
  return Buffer.concat(chunks);
}

function entrySchema(kind: ImageKind, index: number): DescMessage {
  const schema = index === 0 && kind.headSchema !== undefined ? kind.headSchema : kind.schema;
  if (schema === undefined) throw new ImageError("RAW_IMAGE", undefined, `${kind.name} has no entry schema`);
  return schema;
}

function isImageEntry(e: Message | ImageEntry): e is ImageEntry {
  return !("$typeName" in e);
}

/**
 * Path of the first proto2 required field that is not set ("core_entry.tc.comm"), or undefined.
 * Walks set sub-messages and message lists, like protobuf's IsInitialized().
 */
export function missingRequired(schema: DescMessage, msg: Message, path: string = schema.typeName): string | undefined {
  const record = msg as unknown as Record<string, unknown>;
  for (const field of schema.fields) {
    const here = `${path}.${field.name}`;
    if (field.presence === FeatureSet_FieldPresence.LEGACY_REQUIRED && !isFieldSet(msg, field)) return here;
    if (field.fieldKind === "message" && isFieldSet(msg, field)) {
      const sub = missingRequired(field.message, record[field.localName] as Message, here);
      if (sub !== undefined) return sub;
    } else if (field.fieldKind === "list" && field.listKind === "message") {
      const list = record[field.localName] as Message[];
      for (let i = 0; i < list.length; i++) {
        const sub = missingRequired(field.message, list[i]!, `${here}[${i}]`);
        if (sub !== undefined) return sub;
      }
    }
  }
  return undefined;
}

function errText(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}
