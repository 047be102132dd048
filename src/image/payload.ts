// Raw payload that follows some entries inside an image file.
//
// Most images are just [u32 size][message] repeated, but a few kinds write raw bytes after an
// entry, and the size of those bytes is given by fields of the entry itself (CRIU's "extra"):
//
//   PIPES_DATA, FIFO_DATA  pipe_data_entry, then `bytes` bytes
//   SK_QUEUES              sk_packet_entry, then `length` bytes
//   TCP_STREAM             tcp_stream_entry, then inq_len + outq_len bytes (receive queue first)
//   BPFMAP_DATA            bpfmap_data_entry, then keys_bytes + values_bytes bytes
//   GHOST_FILE             ghost_file_entry with chunks unset: file contents to end of file;
//                          with chunks set: ghost_chunk_entry entries, each then `len` bytes
//   IPCNS_SHM              ipc_shm_entry, then `size` bytes padded to 4 (none when in_pagemaps)
//   IPCNS_SEM              ipc_sem_entry, then nsems u16 values padded to 8
//   IPCNS_MSG              ipc_msg_entry, then qnum x ([u32 size][ipc_msg][msize bytes padded to 8])
//
// io.ts hands each entry's payload to the caller as opaque bytes, padding included, so that
// encodeImage(decodeImage(x)) is byte-exact. For IPCNS_MSG the nested messages stay inside the
// payload; parseIpcMsgPayload() splits them.

import { fromBinary, type Message } from "@bufbuild/protobuf";
import { type pipe_data_entry } from "./gen/pipe-data_pb.js";
import { type sk_packet_entry } from "./gen/sk-packet_pb.js";
import { type tcp_stream_entry } from "./gen/tcp-stream_pb.js";
import { type bpfmap_data_entry } from "./gen/bpfmap-data_pb.js";
import { type ghost_file_entry, type ghost_chunk_entry } from "./gen/ghost-file_pb.js";
import { type ipc_shm_entry } from "./gen/ipc-shm_pb.js";
import { type ipc_sem_entry } from "./gen/ipc-sem_pb.js";
import { type ipc_msg_entry, type ipc_msg, ipc_msgSchema } from "./gen/ipc-msg_pb.js";

/**
 * How many raw bytes follow `entry`, which ends at `offset` in `data`. May look at the bytes
 * (IPCNS_MSG must walk its nested records); never reads before `offset`. Throws a plain Error
 * with a short reason when the bytes are inconsistent; io.ts turns it into an ImageError.
 */
export type PayloadSize = (entry: Message, data: Uint8Array, offset: number) => number;

const roundUp = (n: number, to: number): number => Math.ceil(n / to) * to;

function u64(v: bigint, what: string): number {
  if (v > BigInt(Number.MAX_SAFE_INTEGER)) throw new Error(`${what} ${v} is too large`);
  return Number(v);
}

export const pipeDataPayload: PayloadSize = (e) => (e as pipe_data_entry).bytes;

export const skQueuePayload: PayloadSize = (e) => (e as sk_packet_entry).length;

export const tcpStreamPayload: PayloadSize = (e) => {
  const t = e as tcp_stream_entry;
  return t.inqLen + t.outqLen;
};

export const bpfmapDataPayload: PayloadSize = (e) => {
  const b = e as bpfmap_data_entry;
  return b.keysBytes + b.valuesBytes;
};

export const ghostFilePayload: PayloadSize = (e, data, offset) => {
  if (e.$typeName === "ghost_chunk_entry") return u64((e as ghost_chunk_entry).len, "chunk len");
  // Unchunked ghost files store the whole contents after the one entry, up to end of file.
  return (e as ghost_file_entry).chunks ? 0 : data.length - offset;
};

export const ipcShmPayload: PayloadSize = (e) => {
  const s = e as ipc_shm_entry;
  return s.inPagemaps ? 0 : roundUp(u64(s.size, "segment size"), 4);
};

export const ipcSemPayload: PayloadSize = (e) => roundUp((e as ipc_sem_entry).nsems * 2, 8);

export const ipcMsgPayload: PayloadSize = (e, data, offset) => {
  let pos = offset;
  for (const m of walkIpcMsgs((e as ipc_msg_entry).qnum, data, offset)) pos = m.end;
  return pos - offset;
};

export interface IpcMsgRecord {
  msg: ipc_msg;
  /** Message text, msize bytes, without the padding. */
  text: Uint8Array;
  end: number;
}

function* walkIpcMsgs(qnum: number, data: Uint8Array, offset: number): Generator<IpcMsgRecord> {
  const view = new DataView(data.buffer, data.byteOffset, data.byteLength);
  let pos = offset;
  for (let i = 0; i < qnum; i++) {
    if (pos + 4 > data.length) throw new Error(`queued message ${i}: size runs past end of file`);
    const size = view.getUint32(pos, true);
    pos += 4;
    if (pos + size > data.length) throw new Error(`queued message ${i}: ${size}-byte header runs past end of file`);
    const msg = fromBinary(ipc_msgSchema, data.subarray(pos, pos + size));
    pos += size;
    const padded = roundUp(msg.msize, 8);
    if (pos + padded > data.length) throw new Error(`queued message ${i}: ${msg.msize}-byte text runs past end of file`);
    yield { msg, text: data.subarray(pos, pos + msg.msize), end: pos + padded };
    pos += padded;
  }
}

/** Split the payload of one IPCNS_MSG entry into its queued messages. */
export function parseIpcMsgPayload(entry: ipc_msg_entry, payload: Uint8Array): IpcMsgRecord[] {
  return [...walkIpcMsgs(entry.qnum, payload, 0)];
}
