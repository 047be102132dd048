// Seeded mutations of a real image directory for the image fuzzer: raw damage (flip, truncate,
// delete, swap, a huge entry length or varint) and semantic damage (a path or an integer field of
// a decoded entry changed, the image re-encoded). Each returns a one-line description.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { ScalarType, type DescMessage, type Message } from '@bufbuild/protobuf';
import { decodeImage, encodeImage, type ImageEntry } from '../../src/image/io.js';

/** xorshift32: the same seed gives the same mutation, everywhere. */
export class Rng {
  private x: number;
  constructor(seed: number) {
    this.x = (seed * 2654435761) >>> 0 || 1;
  }
  next(): number {
    this.x ^= this.x << 13;
    this.x >>>= 0;
    this.x ^= this.x >>> 17;
    this.x ^= this.x << 5;
    this.x >>>= 0;
    return this.x;
  }
  int(n: number): number {
    return n <= 0 ? 0 : this.next() % n;
  }
  pick<T>(xs: readonly T[]): T {
    return xs[this.int(xs.length)]!;
  }
}

const isRaw = (f: string) => /^pages-\d+\.img$/.test(f) || f.endsWith('.json');

function files(dir: string): string[] {
  return fs.readdirSync(dir).filter((f) => fs.statSync(path.join(dir, f)).isFile()).sort();
}

/** Metadata images three times as likely as page data: that is where the decoders are. */
function pickFile(dir: string, rng: Rng, protoOnly = false): string | undefined {
  const all = files(dir).filter((f) => !protoOnly || !isRaw(f));
  const weighted = all.flatMap((f) => (isRaw(f) ? [f] : [f, f, f]));
  return weighted.length ? rng.pick(weighted) : undefined;
}

/** Paths a file entry may be given that cannot touch anything outside the test. */
const SAFE_PATHS = ['', 'relative/name', '/nonexistent-cryo-fuzz/file', `/${'x'.repeat(5000)}`, '/nonexistent-cryo-fuzz/\u00e9\u0000nul'];

type Slot = { get(): number | bigint; set(v: number | bigint): void; type: ScalarType };

const INT_TYPES = new Set([
  ScalarType.INT32, ScalarType.UINT32, ScalarType.SINT32, ScalarType.FIXED32, ScalarType.SFIXED32,
  ScalarType.INT64, ScalarType.UINT64, ScalarType.SINT64, ScalarType.FIXED64, ScalarType.SFIXED64,
]);

/** Every integer (and string, for paths) slot of a message, nested messages included. */
function slots(msg: Message, desc: DescMessage, ints: Slot[], strings: { msg: Record<string, unknown>; key: string }[]): void {
  const m = msg as unknown as Record<string, unknown>;
  for (const f of desc.fields) {
    if (f.oneof) continue;
    const v = m[f.localName];
    if (f.fieldKind === 'scalar') {
      if (INT_TYPES.has(f.scalar)) ints.push({ get: () => m[f.localName] as number | bigint, set: (x) => (m[f.localName] = x), type: f.scalar });
      else if (f.scalar === ScalarType.STRING && /name|path/i.test(f.localName)) strings.push({ msg: m, key: f.localName });
    } else if (f.fieldKind === 'list' && Array.isArray(v)) {
      if (f.listKind === 'scalar' && INT_TYPES.has(f.scalar)) {
        v.forEach((_, i) => ints.push({ get: () => v[i] as number | bigint, set: (x) => (v[i] = x), type: f.scalar }));
      } else if (f.listKind === 'message') for (const e of v) slots(e as Message, f.message, ints, strings);
    } else if (f.fieldKind === 'message' && v) slots(v as Message, f.message, ints, strings);
  }
}

function interesting(rng: Rng, s: Slot): number | bigint {
  const v = s.get();
  const wide = typeof v === 'bigint';
  const signed = [ScalarType.INT32, ScalarType.SINT32, ScalarType.SFIXED32, ScalarType.INT64, ScalarType.SINT64, ScalarType.SFIXED64].includes(s.type);
  if (wide) {
    const max = signed ? (1n << 63n) - 1n : (1n << 64n) - 1n;
    const min = signed ? -(1n << 63n) : 0n;
    const c = [0n, 1n, v + 1n, v - 1n, v ^ (1n << BigInt(rng.int(64))), max, min, v + 4096n, v * 2n];
    const x = rng.pick(c);
    return x > max ? max : x < min ? min : x;
  }
  const max = signed ? 0x7fffffff : 0xffffffff;
  const min = signed ? -0x80000000 : 0;
  const c = [0, 1, v + 1, v - 1, (v ^ (1 << rng.int(31))) >>> 0, max, min, rng.next(), 4194305];
  const x = rng.pick(c);
  return x > max ? max : x < min ? min : x;
}

/** Decodes `file`, lets `edit` change its entries, writes it back; undefined if it cannot. */
function reencode(file: string, edit: (entries: ImageEntry[], desc: (i: number) => DescMessage) => string | undefined): string | undefined {
  let img;
  try {
    img = decodeImage(fs.readFileSync(file), file);
  } catch {
    return undefined;
  }
  const desc = (i: number) => (i === 0 && img.kind.headSchema ? img.kind.headSchema : img.kind.schema!) as DescMessage;
  const what = edit(img.entries, desc);
  if (what === undefined) return undefined;
  try {
    fs.writeFileSync(file, encodeImage(img.kind.name, img.entries, file));
  } catch {
    return undefined;
  }
  return what;
}

export const MUTATIONS = ['flip', 'truncate', 'delete', 'swap', 'huge-length', 'huge-varint', 'path', 'id'] as const;

/** Applies one seeded mutation to `dir` (another is drawn while one does not apply); returns what it did. */
export function mutate(dir: string, rng: Rng): string | undefined {
  for (let attempt = 0; attempt < 20; attempt++) {
    const what = mutateOnce(dir, rng);
    if (what !== undefined) return what;
  }
  return undefined;
}

function mutateOnce(dir: string, rng: Rng): string | undefined {
  const kind = rng.pick(MUTATIONS);
  const name = pickFile(dir, rng, kind === 'huge-length' || kind === 'huge-varint' || kind === 'path' || kind === 'id');
  if (!name) return undefined;
  const file = path.join(dir, name);
  const buf = fs.readFileSync(file);
  switch (kind) {
    case 'flip': {
      if (!buf.length) return undefined;
      const at = rng.int(buf.length);
      const bit = rng.int(8);
      buf[at] ^= 1 << bit;
      fs.writeFileSync(file, buf);
      return `flip bit ${bit} of byte ${at} of ${name}`;
    }
    case 'truncate': {
      const to = rng.int(buf.length);
      fs.truncateSync(file, to);
      return `truncate ${name} from ${buf.length} to ${to} bytes`;
    }
    case 'delete':
      fs.rmSync(file);
      return `delete ${name}`;
    case 'swap': {
      const other = pickFile(dir, rng);
      if (!other || other === name) return undefined;
      const b = fs.readFileSync(path.join(dir, other));
      fs.writeFileSync(path.join(dir, other), buf);
      fs.writeFileSync(file, b);
      return `swap ${name} and ${other}`;
    }
    case 'huge-length': {
      const off = name === 'inventory.img' ? 4 : 8;
      if (buf.length < off + 4) return undefined;
      const v = rng.pick([0xffffffff, 0x7fffffff, buf.length, 0x10000000]);
      buf.writeUInt32LE(v, off);
      fs.writeFileSync(file, buf);
      return `first entry length of ${name} set to ${v}`;
    }
    case 'huge-varint': {
      if (buf.length < 16) return undefined;
      const at = 8 + 4 + rng.int(buf.length - 12);
      Buffer.from([0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01]).copy(buf, at);
      fs.writeFileSync(file, buf);
      return `10-byte maximal varint written at byte ${at} of ${name}`;
    }
    case 'path':
    case 'id':
      return reencode(file, (entries, desc) => {
        const ints: Slot[] = [];
        const strings: { msg: Record<string, unknown>; key: string }[] = [];
        entries.forEach((e, i) => slots(e.msg, desc(i), ints, strings));
        if (kind === 'path') {
          if (!strings.length) return undefined;
          const s = rng.pick(strings);
          const p = rng.pick(SAFE_PATHS);
          s.msg[s.key] = p;
          return `${name}: ${s.key} set to ${JSON.stringify(p.length > 40 ? p.slice(0, 20) + '...' : p)}`;
        }
        if (!ints.length) return undefined;
        const i = rng.int(ints.length);
        const s = ints[i]!;
        const before = s.get();
        const after = interesting(rng, s);
        s.set(after);
        return `${name}: integer field #${i} changed from ${before} to ${after}`;
      });
  }
}
