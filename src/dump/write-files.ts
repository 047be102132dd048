// The images of the tree's open files: files.img (one entry per open file description; a
// registered kind names its own field, and writes its own images: a tty's, a pipe's bytes),
// messages queued in sockets, file locks, memfd inodes, and the contents of deleted files (ghosts).
import { create, type Message } from '@bufbuild/protobuf';
import { FD_KINDS, recordsOf } from '../resources/files/registry.js';
import type { AnyFdKind } from '../resources/files/fd-kind.js';
import { SCM_RIGHTS } from '../sys/index.js';
import type { ImageDirWriter } from '../image/dir.js';
import { file_entrySchema, fd_types } from '../image/gen/fdinfo_pb.js';
import { sk_packet_entrySchema } from '../image/gen/sk-packet_pb.js';
import { remap_file_path_entrySchema, remap_type } from '../image/gen/remap-file-path_pb.js';
import { ghost_file_entrySchema } from '../image/gen/ghost-file_pb.js';
import { memfd_inode_entrySchema } from '../image/gen/memfd_pb.js';
import { file_lock_entrySchema } from '../image/gen/file-lock_pb.js';
import type { FileTable } from '../resources/files/table.js';
import { encodeTcpStreamImage, tcpStreamImageName } from '../resources/net/tcp-repair.js';

export function writeFileImages(writer: ImageDirWriter, files: FileTable): void {
  writer.writeImage(
    'files.img',
    'FILES',
    // Each record names its payload as file_entry does (reg, pipe, epfd, ...); a registered kind
    // names its own field.
    files.entries.map((f) =>
      f.type === 'KIND'
        ? create(file_entrySchema, { id: f.id, type: fd_types[f.kind.type], [f.kind.field]: f.record })
        : create(file_entrySchema, { ...f, type: fd_types[f.type] }),
    ),
  );
  // Images a kind makes from all its records (tty-info.img, tty-data.img, pipes-data.img).
  for (const kind of FD_KINDS as readonly AnyFdKind[]) {
    if (!kind.images) continue;
    const records = recordsOf(kind, files.entries);
    if (records.length) for (const img of kind.images(records, files.dumpContext)) writer.writeImage(img.file, img.kind, img.entries as Message[]);
  }
  if (files.skQueues.length) {
    writer.writeImage(
      'sk-queues.img',
      'SK_QUEUES',
      files.skQueues.map((q) => ({
        msg: create(sk_packet_entrySchema, { idFor: q.idFor, length: q.data.length, scm: q.rights.length ? [{ type: SCM_RIGHTS, rights: q.rights }] : [] }),
        payload: q.data,
      })),
    );
  }
  // CRIU's tcp-stream-<socket inode, hex>.img: each connection's state and queue bytes.
  for (const c of files.tcp?.connections ?? []) writer.writeRaw(tcpStreamImageName(c.rec.sk.ino), encodeTcpStreamImage(c.rec), { syncLater: true });
  if (files.locks.length) writer.writeImage('filelocks.img', 'FILE_LOCKS', files.locks.map((l) => create(file_lock_entrySchema, l)));
  if (files.memfds.size) {
    writer.writeImage('memfd.img', 'MEMFD_INODE', [...files.memfds.values()].map(({ source: _, ...m }) => create(memfd_inode_entrySchema, m)));
  }
  if (!files.remaps.length) return;
  writer.writeImage('remap-fpath.img', 'REMAP_FPATH', files.remaps.map((r) => create(remap_file_path_entrySchema, { ...r, remapType: remap_type.GHOST })));
  for (const [id, g] of files.ghosts) {
    const mtim = { tvSec: g.mtimSec, tvUsec: g.mtimUsec };
    writer.writeImage(`ghost-file-${id}.img`, 'GHOST_FILE', [
      { msg: create(ghost_file_entrySchema, { uid: g.uid, gid: g.gid, mode: g.mode, size: g.size, mtim, atim: mtim, ...(g.rdev !== undefined ? { rdev: g.rdev } : {}) }), payload: g.data },
    ]);
  }
}
