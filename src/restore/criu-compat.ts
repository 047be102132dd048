// What an image (CRIU's or cryo's) records that cryo cannot restore as recorded, decided once the
// images are read and before any task is created: each is honoured, adapted with a warning
// naming it, or refused with the field named.
import { isFieldSet } from '@bufbuild/protobuf';
import { inventory_entrySchema, lsmtype } from '../image/gen/inventory_pb.js';
import { creds_entrySchema } from '../image/gen/creds_pb.js';
import { UserError } from '../util/errors.js';
import type { Log } from '../util/log.js';
import type { CheckpointImage } from './images.js';
import { ImageDirReader } from '../image/dir.js';
import type { cpuinfo_entry } from '../image/gen/cpuinfo_pb.js';
import { checkCpu, parseCpuCap, DEFAULT_CPU_CAP } from '../resources/task/cpu.js';
import { TASK_RESOURCES } from '../resources/task/registry.js';

/** Refuses what cryo cannot restore from these images, naming the field; adapts what it can. */
export function checkRestorable(ckpt: CheckpointImage, log: Log, cpuCap = DEFAULT_CPU_CAP): void {
  refuseInventory(ckpt);
  const r = ImageDirReader.open(ckpt.dir);
  if (r.exists('cpuinfo.img')) checkCpu(r.read('cpuinfo.img')[0] as cpuinfo_entry, parseCpuCap(cpuCap));
  else log.info('no cpuinfo.img: the CPU is not compared');
  // Namespaces: judged as the images are read (resources/ns/restore.ts readRootNamespaces).
  refuseCreds(ckpt);
  adaptTaskResources(ckpt, log);
}

function refuseInventory(ckpt: CheckpointImage): void {
  const inv = ckpt.inventory;
  const field = (f: string) => `inventory.img ${f}`;
  if (inv.imgVersion !== 2) throw new UserError(`${field('img_version')} is ${inv.imgVersion}: only version 2 images are supported`);
  if (!isFieldSet(inv, inventory_entrySchema.field.fdinfoPerId) || !inv.fdinfoPerId) throw new UserError(`${field('fdinfo_per_id')} is not set: images this old are not supported (nor by CRIU)`);
  if (!inv.rootIds) throw new UserError(`${field('root_ids')} is missing: the dumper's ids are needed to tell shared objects`);
  const plugins = inv.pluginsEntry?.plugins ?? [];
  if (plugins.length) throw new UserError(`${field('plugins_entry')}: the images need the CRIU plugin(s) ${plugins.join(', ')} — not supported`);
  if (isFieldSet(inv, inventory_entrySchema.field.lsmtype) && inv.lsmtype !== lsmtype.NO_LSM) {
    // Only an issue if some task has a profile to restore (checked with the creds).
    const labelled = ckpt.tasks.some((t) => [t.core, ...t.threads.map((th) => th.core)].some((c) => c.threadCore?.creds?.lsmProfile));
    if (labelled) throw new UserError(`${field('lsmtype')} is ${lsmtype[inv.lsmtype]} and tasks have LSM profiles — restoring them is not supported`);
  }
  if (isFieldSet(inv, inventory_entrySchema.field.preDumpMode) && inv.preDumpMode !== 0 && !ckpt.tasks.length) throw new UserError(`${field('pre_dump_mode')}: a pre-dump is not a restorable checkpoint`);
}

function refuseCreds(ckpt: CheckpointImage): void {
  for (const t of ckpt.tasks) {
    for (const [tid, core] of [[t.pid, t.core], ...t.threads.map((th) => [th.tid, th.core] as const)] as const) {
      const c = core.threadCore?.creds;
      if (!c) continue;
      for (const f of ['lsmProfile', 'lsmSockcreate'] as const) {
        if (isFieldSet(c, creds_entrySchema.field[f]) && c[f]) throw new UserError(`tid ${tid}: core-${tid}.img creds.${f === 'lsmProfile' ? 'lsm_profile' : 'lsm_sockcreate'} "${c[f]}" — LSM labels are not restored`);
      }
    }
  }
}

/** Each task resource's look at its fields (resources/task/resource.ts adapt: rlimits lowered). */
function adaptTaskResources(ckpt: CheckpointImage, log: Log): void {
  for (const t of ckpt.tasks) for (const res of TASK_RESOURCES) res.adapt?.({ pid: t.pid, tc: t.core.tc!, mm: t.mm }, (text) => log.warn(text));
}
