// `cryo show FILE`: an image as crit-like JSON, { magic: "CORE", entries: [...] }.
//
// Same shape as `crit decode`: proto field names, only fields that are set, enums by name,
// sub-messages as objects, raw payload under "extra". Differences, chosen for JSON safety and
// readability:
//  - 64-bit integers are strings (JSON numbers lose precision past 2^53);
//  - fields CRIU marks [(criu).hex = true] (and everything inside such a message field) are
//    "0x..." strings, as `crit decode --pretty` prints them (turn off with {hex: false});
//  - bytes and payloads are base64 without line breaks (crit inserts a newline every 76 chars);
//    TCP_STREAM payload is split into {inq, outq} like crit's;
//  - raw images (pages-N.img, ...) show as { magic: "PAGES", size }.
// Other crit --pretty conversions (flags, dev_t, IP addresses) are not done.

import * as fs from "node:fs";
import { getOption, hasOption, isFieldSet, type DescField, type DescMessage, type Message } from "@bufbuild/protobuf";
import { ScalarType } from "@bufbuild/protobuf";
import { criu } from "./gen/opts_pb.js";
import type { tcp_stream_entry } from "./gen/tcp-stream_pb.js";
import { decodeImage, type DecodedImage } from "./io.js";
import { kindForFileName } from "./magic.js";
import { ImageError } from "./errors.js";

export type JsonValue = string | number | boolean | null | JsonValue[] | { [key: string]: JsonValue };

export interface ShowOptions {
  /** Print (criu).hex fields as "0x..." strings (default true). */
  hex?: boolean;
  /** "base64" (default) puts payload bytes under "extra"; "size" only says how many there are. */
  payload?: "base64" | "size";
}

/** Read and decode an image file into crit-like JSON. Throws ImageError on a bad file. */
export function showImage(file: string, opts: ShowOptions = {}): { magic: string; entries?: JsonValue[]; size?: number } {
  const kind = kindForFileName(file);
  let buf: Buffer;
  try {
    buf = fs.readFileSync(file);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    throw new ImageError(code === "ENOENT" ? "MISSING_FILE" : "IO", file, (e as Error).message, undefined, { cause: e });
  }
  if (kind?.framing === "raw") return { magic: kind.name, size: buf.length };
  return imageToJson(decodeImage(buf, file), opts);
}

/** crit-like JSON of an already decoded image. */
export function imageToJson(img: DecodedImage, opts: ShowOptions = {}): { magic: string; entries: JsonValue[] } {
  const hex = opts.hex ?? true;
  const entries = img.entries.map((e, i) => {
    const schema = i === 0 && img.kind.headSchema ? img.kind.headSchema : img.kind.schema!;
    const obj = messageToJson(schema, e.msg, hex, false);
    if (e.payload !== undefined && img.kind.payload !== undefined) {
      obj["extra"] = payloadToJson(e.msg, e.payload, opts.payload ?? "base64");
    }
    return obj;
  });
  return { magic: img.kind.name, entries };
}

/** One message as crit-like JSON (proto field names, set fields only). */
export function messageToJson(schema: DescMessage, msg: Message, hex = true, inHex = false): { [key: string]: JsonValue } {
  const out: { [key: string]: JsonValue } = {};
  const record = msg as unknown as Record<string, unknown>;
  for (const field of schema.fields) {
    if (!isFieldSet(msg, field)) continue;
    const asHex = hex && (inHex || isHexField(field));
    const value = record[field.localName];
    switch (field.fieldKind) {
      case "scalar":
        out[field.name] = scalarToJson(field.scalar, value, asHex);
        break;
      case "enum":
        out[field.name] = enumToJson(field, value as number);
        break;
      case "message":
        out[field.name] = messageToJson(field.message, value as Message, hex, asHex);
        break;
      case "list": {
        const list = value as unknown[];
        if (field.listKind === "scalar") out[field.name] = list.map((v) => scalarToJson(field.scalar, v, asHex));
        else if (field.listKind === "enum") out[field.name] = list.map((v) => enumToJson(field, v as number));
        else out[field.name] = list.map((v) => messageToJson(field.message, v as Message, hex, asHex));
        break;
      }
      case "map":
        // CRIU's schemas have no map fields.
        break;
    }
  }
  return out;
}

function isHexField(field: DescField): boolean {
  return hasOption(field, criu) && getOption(field, criu).hex;
}

function enumToJson(field: DescField, n: number): JsonValue {
  const e = field.fieldKind === "enum" || (field.fieldKind === "list" && field.listKind === "enum") ? field.enum : undefined;
  return e?.values.find((v) => v.number === n)?.name ?? n;
}

function scalarToJson(type: ScalarType, v: unknown, asHex: boolean): JsonValue {
  switch (type) {
    case ScalarType.BOOL:
    case ScalarType.STRING:
      return v as boolean | string;
    case ScalarType.BYTES:
      return Buffer.from(v as Uint8Array).toString("base64");
    case ScalarType.DOUBLE:
    case ScalarType.FLOAT:
      return v as number;
    default: {
      const n = v as number | bigint | string;
      if (asHex) {
        const b = BigInt(n);
        return b < 0n ? "-0x" + (-b).toString(16) : "0x" + b.toString(16);
      }
      return typeof n === "number" ? n : String(n);
    }
  }
}

function payloadToJson(msg: Message, payload: Buffer, mode: "base64" | "size"): JsonValue {
  if (mode === "size") return `... <${payload.length} bytes>`;
  if (msg.$typeName === "tcp_stream_entry") {
    const t = msg as tcp_stream_entry;
    return {
      inq: payload.subarray(0, t.inqLen).toString("base64"),
      outq: payload.subarray(t.inqLen, t.inqLen + t.outqLen).toString("base64"),
    };
  }
  return payload.toString("base64");
}
