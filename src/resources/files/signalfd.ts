// signalfds: the set of signals the fd reads. Its whole state (the mask) shows in fdinfo.
import type { MessageInitShape } from '@bufbuild/protobuf';
import type { signalfd_entrySchema } from '../../image/gen/signalfd_pb.js';
import { sys } from '../../sys/index.js';
import { signalSet, UNBLOCKABLE } from '../observe/names.js';
import { CREATE_FLAGS, fdinfoField, type FdKind, type FdSeen } from './fd-kind.js';
import type { FownData } from './fown.js';

export type SignalfdData = MessageInitShape<typeof signalfd_entrySchema> & { id: number; flags: number; sigmask: bigint; fown: FownData };

export const signalfdKind = {
  name: 'signalfd' as const,
  type: 'SIGNALFD',
  field: 'sgfd',
  phase: 'table',
  object: true,
  recognise: (link: string) => link === 'anon_inode:[signalfd]',
  blocker: () => null,
  dump: (f: FdSeen, id: number, flags: number, fown: FownData): SignalfdData => ({ id, flags, fown, sigmask: BigInt('0x' + fdinfoField(f.info, 'sigmask')) }),
  read: (entry: unknown, id: number) => ({ ...(entry as SignalfdData), id }),
  open(rec: SignalfdData): number {
    const mask = Buffer.alloc(8);
    mask.writeBigUInt64LE(rec.sigmask);
    return sys('signalfd4', [-1, mask, 8, rec.flags & CREATE_FLAGS], `signalfd ${rec.id}`);
  },
  // The kernel drops SIGKILL and SIGSTOP from the mask: an image asking for them shows without.
  expect: (rec: SignalfdData, s, key) => s.set(`${key} sigmask`, signalSet(rec.sigmask & ~UNBLOCKABLE)),
  observe(info, s, key) {
    const mask = info.extra.get('sigmask')?.[0];
    if (mask !== undefined) s.set(`${key} sigmask`, signalSet(BigInt('0x' + mask)));
  },
} satisfies FdKind<SignalfdData>;
