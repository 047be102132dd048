// The images of the tree's open files: files.img (one entry per open file description or path;
// a registered kind names its own field, and writes its own images: a tty's, a pipe's bytes,
// memfd inodes, the contents of deleted files, messages queued in unix sockets, TCP streams),
// and file locks.
import { create, type Message } from '@bufbuild/protobuf';
import { FD_KINDS, recordsOf } from '../resources/files/registry.js';
import type { AnyFdKind } from '../resources/files/fd-kind.js';
import type { ImageDirWriter } from '../image/dir.js';
import { file_entrySchema, fd_types } from '../image/gen/fdinfo_pb.js';
import { file_lock_entrySchema } from '../image/gen/file-lock_pb.js';
import type { FileTable } from '../resources/files/table.js';

export function writeFileImages(writer: ImageDirWriter, files: FileTable): void {
  writer.writeImage(
    'files.img',
    'FILES',
    // Each kind names its record's field of file_entry (reg, pipe, epfd, usk, ...).
    files.entries.map((f) => create(file_entrySchema, { id: f.id, type: fd_types[f.kind.type], [f.kind.field]: f.record })),
  );
  // Images a kind makes from all its records (tty-info.img, pipes-data.img, memfd.img, ghosts).
  for (const kind of FD_KINDS as readonly AnyFdKind[]) {
    if (!kind.images) continue;
    const records = recordsOf(kind, files.entries);
    if (!records.length) continue;
    for (const img of kind.images(records, files.dumpContext)) {
      // Raw images (tcp-stream) are synced with the others at the end, as the dump's own are.
      if ('raw' in img) writer.writeRaw(img.file, img.raw, { syncLater: true });
      else writer.writeImage(img.file, img.kind, img.entries as Message[]);
    }
  }
  if (files.locks.length) writer.writeImage('filelocks.img', 'FILE_LOCKS', files.locks.map((l) => create(file_lock_entrySchema, l)));
}
