// A mount namespace as CRIU's images: mountpoints-N.img (N: the namespace's id in ids-PID.img),
// one mnt_entry a mount in mountinfo order, and tmpfs-dev-D.tar.gz.img per tmpfs made anew (D:
// its root_dev). Propagation: shared_id and master_id as mountinfo numbers them, MS_UNBINDABLE in
// flags. cryo's own field: cryo_root_path (1001) on the root mount.
import { create } from '@bufbuild/protobuf';
import type { ImageDirWriter, ImageDirReader } from '../../image/dir.js';
import { mnt_entrySchema, fstype, type mnt_entry } from '../../image/gen/mnt_pb.js';
import { hasField } from '../../image/presence.js';
import { UserError } from '../../util/errors.js';
import type { PlannedMount } from './plan.js';
import { mountFlags, superData, kdev, MS } from './flags.js';

const FSTYPES: Record<string, number> = {
  proc: fstype.PROC, sysfs: fstype.SYSFS, devtmpfs: fstype.DEVTMPFS, tmpfs: fstype.TMPFS, devpts: fstype.DEVPTS,
  mqueue: fstype.MQUEUE, cgroup2: fstype.CGROUP2, cgroup: fstype.CGROUP, overlay: fstype.OVERLAYFS, fuse: fstype.FUSE,
};

export const mntImageName = (nsId: number) => `mountpoints-${nsId}.img`;
export const tmpfsImageName = (rootDev: number) => `tmpfs-dev-${rootDev}.tar.gz.img`;

export function mntEntry(p: PlannedMount): mnt_entry {
  const m = p.info;
  const { sbFlags, data } = superData(m.superOptions);
  const e = create(mnt_entrySchema, {
    fstype: FSTYPES[m.fsType] ?? fstype.UNSUPPORTED, mntId: m.mountId, rootDev: kdev(m.major, m.minor), parentMntId: m.parentId,
    flags: mountFlags(m.mountOptions) | (m.unbindable ? MS.UNBINDABLE : 0), root: m.root, mountpoint: m.mountPoint, source: m.source, options: data, fsname: m.fsType, sbFlags,
  });
  if (m.shared) e.sharedId = m.shared;
  if (m.master) e.masterId = m.master;
  if (p.kind === 'external') {
    e.extMount = true;
    e.extKey = p.key;
  }
  if (p.kind === 'root' && p.hostPath !== undefined) e.cryoRootPath = p.hostPath;
  return e;
}

export function writeMntImages(w: ImageDirWriter, nsId: number, mounts: PlannedMount[], tars: Map<number, Buffer>): void {
  w.writeImage(mntImageName(nsId), 'MNTS', mounts.map(mntEntry));
  for (const [dev, tar] of tars) w.writeRaw(tmpfsImageName(dev), tar);
}

/** The mount entries back, checked: a tree with the root first and every parent before its mounts. */
export function readMntImages(r: ImageDirReader, nsId: number): mnt_entry[] {
  const name = mntImageName(nsId);
  if (!r.exists(name)) throw new UserError(`the root had a mount namespace of its own (mnt_ns_id ${nsId}) but ${name} is missing`);
  const entries = r.read(name) as mnt_entry[];
  if (!entries.length) throw new UserError(`${name}: no mounts`);
  const seen = new Set<number>();
  entries.forEach((e, i) => {
    if (i > 0 && !seen.has(e.parentMntId)) throw new UserError(`${name}: mount ${e.mntId} (${e.mountpoint}) comes before its parent ${e.parentMntId}`);
    if (!e.mountpoint.startsWith('/') || e.mountpoint.split('/').includes('..')) throw new UserError(`${name}: mount ${e.mntId}: bad mount point ${JSON.stringify(e.mountpoint)}`);
    if (hasField(mnt_entrySchema, e, 'extMount') && e.extMount && !hasField(mnt_entrySchema, e, 'extKey')) throw new UserError(`${name}: external mount ${e.mountpoint} without its key`);
    seen.add(e.mntId);
  });
  if (entries[0]!.mountpoint !== '/') throw new UserError(`${name}: the first mount is ${entries[0]!.mountpoint}, not the root`);
  return entries;
}
