// A tree root's own user namespace (`unshare --user --map-root-user`, a rootless-style
// container): its uid and gid maps, whether setgroups is denied in it, and its owner's uid, in
// CRIU's userns-N.img (N: user_ns_id; cryo's fields 1001, 1002 for setgroups and the owner).
//
// Credentials of the tasks in it are kept as the tasks see them (CRIU's rule: its parasite asks
// getresuid inside); cryo reads them from /proc/PID/status in the host's view, so they are
// translated through the maps here, and back for the verification.
//
// What can be carried (judged before anything is touched, and again for images read): a user
// namespace one level below cryo's, owning every other namespace of its own the root has
// (mount, UTS, IPC, PID, network, cgroup and time: they are made by a task inside it at restore;
// a PID namespace's init is then forked into it from outside, user-restore.ts),
// its tasks single-threaded (each joins the namespace with setns(CLONE_NEWUSER), which the kernel
// refuses to a process of several threads; user-restore.ts says why they join last) and their
// ids mapped in it. Tasks in a user namespace below the root's are refused as any other
// namespace that is neither cryo's nor the root's.
import { readFileSync, readdirSync } from 'node:fs';
import { create } from '@bufbuild/protobuf';
import { nsInode, nsOwnerInode, nsParentInode, nsOwnerUid } from '../../sys/index.js';
import { parseIdMap, idInside, idOutside, parseStatus, statusIds, statusGroups, type IdExtent } from '../../proc/index.js';
import type { ImageDirWriter, ImageDirReader } from '../../image/dir.js';
import { userns_entrySchema, type userns_entry } from '../../image/gen/userns_pb.js';
import { hasField } from '../../image/presence.js';
import { UserError } from '../../util/errors.js';

export interface UsernsState {
  uidMap: IdExtent[];
  gidMap: IdExtent[];
  /** /proc/PID/setgroups said "deny". */
  setgroupsDeny: boolean;
  /** The namespace's creator's euid (0 for a CRIU image, which does not keep it). */
  ownerUid: number;
}

/** The uid, gid and groups fields of a creds_entry (or CredsData). */
export interface IdCreds {
  uid: number; euid: number; suid: number; fsuid: number;
  gid: number; egid: number; sgid: number; fsgid: number;
  groups: number[];
}

const UID_FIELDS = ['uid', 'euid', 'suid', 'fsuid'] as const;
const GID_FIELDS = ['gid', 'egid', 'sgid', 'fsgid'] as const;

export function dumpUserns(pid: number): UsernsState {
  return {
    uidMap: parseIdMap(readFileSync(`/proc/${pid}/uid_map`, 'utf8')),
    gidMap: parseIdMap(readFileSync(`/proc/${pid}/gid_map`, 'utf8')),
    setgroupsDeny: readFileSync(`/proc/${pid}/setgroups`, 'utf8').trim() === 'deny',
    ownerUid: nsOwnerUid(`/proc/${pid}/ns/user`),
  };
}

const mapText = (m: IdExtent[]) => m.map((e) => `${e.first} ${e.lowerFirst} ${e.count}`).join(', ') || 'none';

/** The namespace as check -t and the log name it. */
export const usernsText = (s: UsernsState): string =>
  `uid_map ${mapText(s.uidMap)}, gid_map ${mapText(s.gidMap)}${s.setgroupsDeny ? ', setgroups deny' : ''}, owner uid ${s.ownerUid}`;

/**
 * Why the root's own user namespace cannot be carried, or null. `own`: the other kinds the
 * root has of its own (each must be owned by this user namespace).
 */
export function rootUsernsProblem(root: number, own: readonly string[]): string | null {
  const path = `/proc/${root}/ns/user`;
  try {
    const ino = nsInode(path);
    const problems: string[] = [];
    let parent: number | null = null;
    try {
      parent = nsParentInode(path);
    } catch {
      /* EPERM: its parent is not even below ours */
    }
    if (parent !== nsInode('/proc/self/ns/user')) problems.push('it is not a child of cryo\'s user namespace (nested user namespaces are not supported)');
    for (const kind of own) {
      // pid: the root's own PID namespace (pid_for_children is judged elsewhere).
      if (kind !== 'user' && nsOwnerInode(`/proc/${root}/ns/${kind}`) !== ino) problems.push(`its ${kind} namespace is owned by another user namespace (made before it): not supported`);
    }
    const s = dumpUserns(root);
    if (!s.uidMap.length || !s.gidMap.length) problems.push('its uid or gid map is not written');
    return problems.length ? `its own user namespace (${usernsText(s)}): ${problems.join('; ')}` : null;
  } catch (e) {
    return `its own user namespace: ${(e as Error).message}`;
  }
}

/** Why task `pid`, in the root's own user namespace, cannot be restored in it, or null. */
export function usernsMemberProblem(pid: number, root: number): string | null {
  try {
    const threads = readdirSync(`/proc/${pid}/task`).length;
    if (threads > 1) return `${threads} threads in the tree's own user namespace: a restored task joins it with setns(CLONE_NEWUSER), which the kernel refuses to a process of several threads — not supported`;
    const status = parseStatus(readFileSync(`/proc/${pid}/status`, 'utf8'));
    const s = dumpUserns(root);
    const unmapped = [
      ...statusIds(status, 'Uid').filter((u) => idInside(s.uidMap, u) === null).map((u) => `uid ${u}`),
      ...[...statusIds(status, 'Gid'), ...statusGroups(status)].filter((g) => idInside(s.gidMap, g) === null).map((g) => `gid ${g}`),
    ];
    return unmapped.length ? `its ${[...new Set(unmapped)].join(', ')} are not mapped in the tree's user namespace (${usernsText(s)}): not supported` : null;
  } catch (e) {
    return `in the tree's user namespace: ${(e as Error).message}`;
  }
}

function translate<T extends IdCreds>(c: T, s: UsernsState, how: typeof idInside, what: string): T {
  const one = (map: IdExtent[], id: number, kind: string) => {
    const v = how(map, id);
    if (v === null) throw new UserError(`${what}: ${kind} ${id} is not mapped in the tree's user namespace (${usernsText(s)})`);
    return v;
  };
  const out = { ...c };
  for (const f of UID_FIELDS) out[f] = one(s.uidMap, c[f], 'uid');
  for (const f of GID_FIELDS) out[f] = one(s.gidMap, c[f], 'gid');
  out.groups = c.groups.map((g) => one(s.gidMap, g, 'group'));
  return out;
}

/** Host ids (cryo's view, /proc/PID/status) as the task sees them inside. */
export const credsInside = <T extends IdCreds>(c: T, s: UsernsState, what: string): T => translate(c, s, idInside, what);
/** Inside ids (the images') as cryo sees them. */
export const credsOutside = <T extends IdCreds>(c: T, s: UsernsState, what: string): T => translate(c, s, idOutside, what);

export function writeUsernsImage(w: ImageDirWriter, id: number, s: UsernsState): void {
  w.writeImage(`userns-${id}.img`, 'USERNS', [create(userns_entrySchema, {
    uidMap: s.uidMap, gidMap: s.gidMap, cryoSetgroupsDeny: s.setgroupsDeny, cryoOwnerUid: s.ownerUid,
  })]);
}

export function readUsernsImage(r: ImageDirReader, id: number): UsernsState {
  const name = `userns-${id}.img`;
  const [e] = r.read(name) as userns_entry[];
  if (!e) throw new UserError(`${name} is empty`);
  const ext = (m: { first: number; lowerFirst: number; count: number }[], kind: string) => {
    if (!m.length) throw new UserError(`${name}: no ${kind} map`);
    if (m.length > 340) throw new UserError(`${name}: ${m.length} ${kind} map lines, more than the kernel takes (340)`);
    return m.map((x) => {
      if (x.count === 0 || x.first + x.count > 0x100000000 || x.lowerFirst + x.count > 0x100000000) throw new UserError(`${name}: bad ${kind} extent ${x.first} ${x.lowerFirst} ${x.count}`);
      return { first: x.first, lowerFirst: x.lowerFirst, count: x.count };
    });
  };
  return {
    uidMap: ext(e.uidMap, 'uid'), gidMap: ext(e.gidMap, 'gid'),
    setgroupsDeny: hasField(userns_entrySchema, e, 'cryoSetgroupsDeny') ? e.cryoSetgroupsDeny === true : false,
    ownerUid: hasField(userns_entrySchema, e, 'cryoOwnerUid') ? e.cryoOwnerUid ?? 0 : 0,
  };
}
