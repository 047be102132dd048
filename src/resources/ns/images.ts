// A tree's own UTS and IPC namespaces as CRIU's images, named by the namespace's id
// (task_kobj_ids_entry uts_ns_id / ipc_ns_id): utsns-N.img, ipcns-var-N.img, ipcns-sem-N.img
// (each set, then its values as u16 padded to 8 bytes), ipcns-msg-N.img (each queue, then each
// message as [u32 size][ipc_msg][text padded to 8]), ipcns-shm-N.img (each segment, then its
// bytes padded to 4). Decoded back into the NsState the ns helper rebuilds.
import { create, toBinary } from '@bufbuild/protobuf';
import type { ImageDirWriter, ImageDirReader } from '../../image/dir.js';
import { utsns_entrySchema, type utsns_entry } from '../../image/gen/utsns_pb.js';
import { ipc_var_entrySchema, type ipc_var_entry } from '../../image/gen/ipc-var_pb.js';
import { ipc_sem_entrySchema, type ipc_sem_entry } from '../../image/gen/ipc-sem_pb.js';
import { ipc_msg_entrySchema, ipc_msgSchema, type ipc_msg_entry } from '../../image/gen/ipc-msg_pb.js';
import { ipc_shm_entrySchema, type ipc_shm_entry } from '../../image/gen/ipc-shm_pb.js';
import { parseIpcMsgPayload } from '../../image/payload.js';
import { hasField } from '../../image/presence.js';
import { UserError } from '../../util/errors.js';
import { IPC_VAR_FILES, IPC_NEXT_IDS, type IpcVars } from './ipc-vars.js';
import type { NsState, IpcState } from './state.js';

const pad = (n: number, to: number) => Math.ceil(n / to) * to;
const U64_FIELDS = new Set(['shmCtlmax', 'shmCtlall']);
const OPTIONAL_VARS = new Set(['mqMsgDefault', 'mqMsgsizeDefault']);

export function writeNsImages(w: ImageDirWriter, ids: { utsNsId: number; ipcNsId: number }, s: NsState): void {
  if (s.uts) w.writeImage(`utsns-${ids.utsNsId}.img`, 'UTSNS', [create(utsns_entrySchema, s.uts)]);
  if (!s.ipc) return;
  const id = ids.ipcNsId;
  w.writeImage(`ipcns-var-${id}.img`, 'IPC_VAR', [varEntry(s.ipc.vars)]);
  w.writeImage(`ipcns-sem-${id}.img`, 'IPCNS_SEM', s.ipc.sems.map((set) => {
    const payload = Buffer.alloc(pad(set.values.length * 2, 8));
    set.values.forEach((v, i) => payload.writeUInt16LE(v, i * 2));
    return { msg: create(ipc_sem_entrySchema, { desc: set.desc, nsems: set.values.length }), payload };
  }));
  w.writeImage(`ipcns-msg-${id}.img`, 'IPCNS_MSG', s.ipc.msgs.map((q) => {
    const parts = q.messages.flatMap((m) => {
      const text = Buffer.from(m.text, 'base64');
      const head = Buffer.from(toBinary(ipc_msgSchema, create(ipc_msgSchema, { mtype: BigInt(m.mtype), msize: text.length })));
      const size = Buffer.alloc(4);
      size.writeUInt32LE(head.length);
      const body = Buffer.alloc(pad(text.length, 8));
      text.copy(body);
      return [size, head, body];
    });
    return { msg: create(ipc_msg_entrySchema, { desc: q.desc, qbytes: q.qbytes, qnum: q.messages.length }), payload: Buffer.concat(parts) };
  }));
  w.writeImage(`ipcns-shm-${id}.img`, 'IPCNS_SHM', s.ipc.shms.map((g) => ({
    msg: create(ipc_shm_entrySchema, { desc: g.desc, size: BigInt(g.size) }),
    payload: Buffer.from(g.data, 'base64'),
  })));
}

function varEntry(v: IpcVars): ipc_var_entry {
  const e = create(ipc_var_entrySchema, { semCtls: v.semCtls });
  const rec = e as unknown as Record<string, number | bigint>;
  // Required fields are written even for a sysctl this kernel lacks (0, as CRIU does).
  for (const k of Object.keys(IPC_VAR_FILES)) if (!OPTIONAL_VARS.has(k)) rec[k] = U64_FIELDS.has(k) ? 0n : 0;
  for (const [k, val] of Object.entries(v.values)) rec[k] = U64_FIELDS.has(k) ? BigInt(val) : Number(val);
  for (const [k, val] of Object.entries(v.nextIds)) rec[k] = val;
  return e;
}

/** The namespaces' state back from the images; `kinds`: which the root had of its own. */
export function readNsImages(r: ImageDirReader, ids: { utsNsId: number; ipcNsId: number }, kinds: { uts: boolean; ipc: boolean }): NsState {
  const out: NsState = {};
  if (kinds.uts) {
    const name = `utsns-${ids.utsNsId}.img`;
    const e = r.read(name) as utsns_entry[];
    if (e.length !== 1) throw new UserError(`${name}: ${e.length} entries, wanted 1 (the root has a UTS namespace of its own)`);
    out.uts = { nodename: e[0]!.nodename, domainname: e[0]!.domainname };
  }
  if (kinds.ipc) out.ipc = readIpc(r, ids.ipcNsId);
  return out;
}

function readIpc(r: ImageDirReader, id: number): IpcState {
  const varName = `ipcns-var-${id}.img`;
  const vars = r.read(varName) as ipc_var_entry[];
  if (vars.length !== 1) throw new UserError(`${varName}: ${vars.length} entries, wanted 1 (the root has an IPC namespace of its own)`);
  const v = vars[0]!;
  const values: IpcVars['values'] = {};
  for (const k of Object.keys(IPC_VAR_FILES) as (keyof typeof IPC_VAR_FILES)[]) {
    if (hasField(ipc_var_entrySchema, v, k)) values[k] = String(v[k]);
  }
  const nextIds: IpcVars['nextIds'] = {};
  for (const k of Object.keys(IPC_NEXT_IDS) as (keyof typeof IPC_NEXT_IDS)[]) if (hasField(ipc_var_entrySchema, v, k)) nextIds[k] = v[k];
  const entries = (name: string) => (r.exists(name) ? r.readImage(name).entries : []);
  const sems = entries(`ipcns-sem-${id}.img`).map((e) => {
    const s = e.msg as ipc_sem_entry;
    const p = Buffer.from(e.payload ?? Buffer.alloc(0));
    return { desc: descOf(s.desc, `ipcns-sem-${id}.img`), values: Array.from({ length: s.nsems }, (_, i) => p.readUInt16LE(i * 2)) };
  });
  const msgs = entries(`ipcns-msg-${id}.img`).map((e) => {
    const q = e.msg as ipc_msg_entry;
    const messages = parseIpcMsgPayload(q, e.payload ?? new Uint8Array()).map((m) => ({ mtype: m.msg.mtype.toString(), text: Buffer.from(m.text).toString('base64') }));
    return { desc: descOf(q.desc, `ipcns-msg-${id}.img`), qbytes: q.qbytes, messages };
  });
  const shms = entries(`ipcns-shm-${id}.img`).map((e) => {
    const g = e.msg as ipc_shm_entry;
    if (g.inPagemaps) throw new UserError(`ipcns-shm-${id}.img: segment ${g.desc?.id} keeps its contents in a pagemap — not supported`);
    return { desc: descOf(g.desc, `ipcns-shm-${id}.img`), size: g.size.toString(), data: Buffer.from(e.payload ?? Buffer.alloc(0)).toString('base64') };
  });
  return { vars: { semCtls: v.semCtls, values, nextIds }, sems, msgs, shms };
}

function descOf(d: ipc_sem_entry['desc'], file: string) {
  if (!d) throw new UserError(`${file}: an object without its ipc_desc_entry`);
  return { key: d.key, uid: d.uid, gid: d.gid, cuid: d.cuid, cgid: d.cgid, mode: d.mode, id: d.id };
}
