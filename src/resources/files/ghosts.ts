// The deleted files of one dump or restore (ghost.ts makes and reads each one). Dump: each
// deleted file's contents once per inode (ghost-file-N.img) and which REG entries name it
// (remap-fpath.img). Restore: read back and refused if they cannot be made, made again at their
// paths before any task exists, and removed just before the tasks run (or after a failure).
// They belong to the REG entries (reg.ts): an fd, a mapping, an exe, a cwd or a FIFO's path.
import { statSync } from 'node:fs';
import { create, isFieldSet } from '@bufbuild/protobuf';
import { remap_file_path_entrySchema, remap_type, type remap_file_path_entry } from '../../image/gen/remap-file-path_pb.js';
import { ghost_chunk_entrySchema, ghost_file_entrySchema, type ghost_chunk_entry, type ghost_file_entry } from '../../image/gen/ghost-file_pb.js';
import { hasField } from '../../image/presence.js';
import { UserError } from '../../util/errors.js';
import { readGhost, createGhost, removeGhost, type GhostData } from './ghost.js';
import type { KindImage, KindImages, KindState } from './fd-kind.js';

/** The dump's deleted files: contents by ghost id (one per inode) and the file ids using each. */
interface GhostDump {
  byInode: Map<string, number>;
  ghosts: Map<number, GhostData>;
  remaps: { origId: number; remapId: number }[];
}

const ghostDump = (state: KindState) => state.memo<GhostDump>('ghosts', () => ({ byInode: new Map(), ghosts: new Map(), remaps: [] }));

/** File `id` is a deleted file, readable through `source`: its contents are saved once per inode. */
export function saveGhost(state: KindState, id: number, source: string): void {
  const d = ghostDump(state);
  const st = statSync(source);
  const key = `${st.dev}:${st.ino}`;
  let g = d.byInode.get(key);
  if (g === undefined) {
    g = d.byInode.size + 1;
    d.byInode.set(key, g);
    d.ghosts.set(g, readGhost(source));
  }
  d.remaps.push({ origId: id, remapId: g });
}

/** remap-fpath.img and a ghost-file-N.img per deleted file (none without deleted files). */
export function ghostImages(state: KindState): KindImage[] {
  const d = ghostDump(state);
  if (!d.remaps.length) return [];
  const out: KindImage[] = [{ file: 'remap-fpath.img', kind: 'REMAP_FPATH', entries: d.remaps.map((r) => create(remap_file_path_entrySchema, { ...r, remapType: remap_type.GHOST })) }];
  for (const [id, g] of d.ghosts) {
    const mtim = { tvSec: g.mtimSec, tvUsec: g.mtimUsec };
    const msg = create(ghost_file_entrySchema, {
      uid: g.uid, gid: g.gid, mode: g.mode, size: g.size, mtim, atim: mtim,
      ...(g.rdev !== undefined ? { rdev: g.rdev } : {}), ...(g.chunks ? { chunks: true } : {}),
    });
    if (!g.chunks) {
      out.push({ file: `ghost-file-${id}.img`, kind: 'GHOST_FILE', entries: [{ msg, payload: g.data }] });
      continue;
    }
    // Sparse: the header, then each chunk with its bytes (CRIU's ghost_chunk_entry).
    const entries: { msg: unknown; payload: Buffer }[] = [{ msg, payload: Buffer.alloc(0) }];
    let at = 0;
    for (const c of g.chunks) {
      entries.push({ msg: create(ghost_chunk_entrySchema, { off: c.off, len: BigInt(c.len) }), payload: g.data.subarray(at, at + c.len) });
      at += c.len;
    }
    out.push({ file: `ghost-file-${id}.img`, kind: 'GHOST_FILE', entries });
  }
  return out;
}

/** A deleted file of the images: the path it is made again at. */
export interface Ghost {
  path: string;
  ghost: GhostData;
}

const REMAP_GHOST = 1;

/**
 * The images' deleted files, by ghost id, read once; their paths are the restore's own from then
 * on (KindImages.madePaths). Throws on what cannot be made (another remap type, chunks).
 */
export function readGhosts(images: KindImages): Map<number, Ghost> {
  return images.memo('ghosts read', () => {
    const out = new Map<number, Ghost>();
    for (const m of (images.read('remap-fpath.img') ?? []) as remap_file_path_entry[]) {
      // An absent type is the old format's ghost (a decoded absent enum would read 0, LINKED).
      if ((hasField(remap_file_path_entrySchema, m, 'remapType') ? m.remapType : REMAP_GHOST) !== REMAP_GHOST) throw new UserError(`remap-fpath.img: file id ${m.origId}: remap type ${m.remapType} — not supported yet`);
      const reg = images.pathEntry(m.origId);
      if (!reg) throw new UserError(`remap-fpath.img: file id ${m.origId} missing from files.img`);
      const known = out.get(m.remapId);
      if (known) {
        if (known.path !== reg.name) throw new UserError(`ghost file ${m.remapId} is used under two names (${known.path}, ${reg.name})`);
        continue;
      }
      const name = `ghost-file-${m.remapId}.img`;
      const [first, ...rest] = images.readWithPayloads(name) ?? [];
      const g = first?.msg as ghost_file_entry | undefined;
      if (!g) throw new UserError(`${name}: empty`);
      out.set(m.remapId, {
        path: reg.name,
        ghost: {
          mode: g.mode, uid: g.uid, gid: g.gid, size: g.size ?? 0n,
          mtimSec: g.mtim?.tvSec ?? 0n, mtimUsec: g.mtim?.tvUsec ?? 0n,
          ...(g.chunks ? chunksOf(name, g, rest) : { data: Buffer.from(first!.payload) }),
          ...(isFieldSet(g, ghost_file_entrySchema.field.rdev) ? { rdev: g.rdev } : {}),
        },
      });
      images.madePaths.add(reg.name);
    }
    return out;
  });
}

/** A sparse ghost's chunks (after its header), refused when one lies outside the file or on another. */
function chunksOf(name: string, g: ghost_file_entry, entries: { msg: unknown; payload: Uint8Array }[]): { data: Buffer; chunks: { off: bigint; len: number }[] } {
  const size = g.size ?? 0n;
  let end = 0n;
  const chunks = entries.map((e) => {
    const c = e.msg as ghost_chunk_entry;
    if (c.$typeName !== 'ghost_chunk_entry' || c.off < end || c.off + c.len > size || BigInt(e.payload.length) !== c.len)
      throw new UserError(`${name}: a chunk at ${c.off} of ${c.len} bytes does not fit a file of ${size} bytes after ${end}`);
    end = c.off + c.len;
    return { off: c.off, len: Number(c.len) };
  });
  return { data: Buffer.concat(entries.map((e) => e.payload)), chunks };
}

/** The deleted files made again so far, with the directories made for them, in order. */
const madeGhosts = (images: KindImages) => images.memo('ghosts made', () => [] as (Ghost & { parents: string[] })[]);

/** Files made again with O_TMPFILE, by path: the description the entry of that path gets. */
export const ghostTmpfiles = (images: KindImages) => images.memo('ghost tmpfiles', () => new Map<string, number>());

/**
 * Makes every deleted file again at its path, for the tasks to open and map. `tmpfileFlags`: the
 * status flags of the O_TMPFILE description a path had (made so again), if any.
 */
export function makeGhosts(images: KindImages, tmpfileFlags: (path: string) => number | undefined): void {
  const made = madeGhosts(images);
  for (const g of readGhosts(images).values()) {
    const m = createGhost(g.path, g.ghost, tmpfileFlags(g.path));
    made.push({ ...g, parents: m.parents });
    if (m.fd !== undefined) ghostTmpfiles(images).set(g.path, m.fd);
  }
}

/** Removes the deleted files made again (last made first); returns what could not be removed. */
export function unmakeGhosts(images: KindImages): string[] {
  const failed: string[] = [];
  for (const g of madeGhosts(images).splice(0).reverse()) {
    try {
      removeGhost(g.path, g.ghost, g.parents);
    } catch (e) {
      failed.push(`could not remove ${g.path} again: ${(e as Error).message}`);
    }
  }
  return failed;
}
