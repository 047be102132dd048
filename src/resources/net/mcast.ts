// Multicast groups a datagram socket joined (IP_ADD_MEMBERSHIP, MCAST_JOIN_GROUP, source-specific
// joins and filters): lost silently by a restore that only binds, after which the program simply
// stops receiving. /proc lists the groups joined per interface of the namespace; each is asked of
// the socket with MCAST_MSFILTER, which answers only for the groups this socket joined, with its
// filter. Saved in inet_sk_entry's cryo_mcast, joined again on the interface of the same name.
import type { MessageInitShape } from '@bufbuild/protobuf';
import { readFileSync } from 'node:fs';
import type { cryo_mcast_entrySchema } from '../../image/gen/sk-inet_pb.js';
import { AF, groupFilter, joinGroup, ifindexIn } from '../../sys/index.js';
import { parseIgmp, parseIgmp6, type JoinedGroup } from '../../proc/index.js';

export type McastRecord = MessageInitShape<typeof cryo_mcast_entrySchema> & { ifname: string; ifindex: number; group: Uint8Array; mode: number; sources: Uint8Array[] };

function joinedInNamespace(pid: number, family: number): JoinedGroup[] {
  try {
    const v4 = readFileSync(`/proc/${pid}/net/igmp`, 'utf8');
    if (family === AF.INET) return parseIgmp(v4);
    // An IPv6 socket may have joined IPv6 groups only (MCAST_* at SOL_IPV6).
    return parseIgmp6(readFileSync(`/proc/${pid}/net/igmp6`, 'utf8'));
  } catch {
    return []; // no multicast in this kernel or namespace
  }
}

/** The groups our copy `fd` of a socket of task `pid` joined. */
export function dumpMemberships(pid: number, fd: number, family: number): McastRecord[] {
  const out: McastRecord[] = [];
  const seen = new Set<string>();
  for (const j of joinedInNamespace(pid, family)) {
    const key = `${j.ifindex}/${j.group.toString('hex')}`;
    if (seen.has(key)) continue;
    seen.add(key);
    const f = groupFilter(fd, family, j.ifindex, j.group);
    if (f) out.push({ ifname: j.ifname, ifindex: j.ifindex, group: new Uint8Array(j.group), mode: f.mode, sources: f.sources.map((s) => new Uint8Array(s)) });
  }
  return out;
}

/** Joins the recorded groups again, on the interfaces of the same names. */
export function restoreMemberships(fd: number, family: number, records: McastRecord[], what: string): void {
  for (const m of records) {
    let ifindex: number;
    try {
      ifindex = ifindexIn(fd, m.ifname);
    } catch (e) {
      throw new Error(`${what}: joined multicast group ${groupText(family, m.group)} on ${m.ifname}, which this host does not have (${(e as Error).message})`);
    }
    joinGroup(fd, family, { ifindex, group: Buffer.from(m.group), mode: m.mode, sources: m.sources.map((s) => Buffer.from(s)) }, `${what}: group ${groupText(family, m.group)} on ${m.ifname}`);
  }
}

function groupText(family: number, a: Uint8Array): string {
  if (family === AF.INET) return [...a].join('.');
  return Buffer.from(a).toString('hex').replace(/(.{4})(?!$)/g, '$1:');
}

/** A membership as the verification spells it, from the image and from the socket alike. */
export function membershipText(family: number, ifname: string, group: Uint8Array, mode: number, sources: Uint8Array[]): string {
  const src = sources.map((s) => groupText(family, s)).sort().join(',');
  return `${groupText(family, group)} on ${ifname} ${mode === 1 ? 'include' : 'exclude'} [${src}]`;
}
