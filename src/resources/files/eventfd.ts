// eventfds: a 64-bit counter, in semaphore mode or not. Its whole state shows in fdinfo; the
// restore creates one with the same flags and writes the count into it.
import type { MessageInitShape } from '@bufbuild/protobuf';
import { writeSync } from 'node:fs';
import type { eventfd_file_entrySchema } from '../../image/gen/eventfd_pb.js';
import { sys } from '../../sys/index.js';
import { CREATE_FLAGS, fdinfoField, type FdKind, type FdSeen } from './fd-kind.js';
import type { FownData } from './fown.js';

export type EventfdData = MessageInitShape<typeof eventfd_file_entrySchema> & { id: number; flags: number; counter: bigint; fown: FownData };

/** EFD_SEMAPHORE: CRIU keeps it in bit 0 of the flags (which O_RDONLY leaves free). */
const EFD_SEMAPHORE = 1;

export const eventfdKind = {
  name: 'eventfd' as const,
  type: 'EVENTFD',
  field: 'efd',
  phase: 'table',
  object: true,
  recognise: (link: string) => link === 'anon_inode:[eventfd]',
  blocker: () => null,
  dump(f: FdSeen, id: number, flags: number, fown: FownData): EventfdData {
    const sem = f.info.extra.get('eventfd-semaphore')?.[0] === '1' ? EFD_SEMAPHORE : 0;
    return { id, flags: flags | sem, fown, counter: BigInt('0x' + fdinfoField(f.info, 'eventfd-count')) };
  },
  read: (entry: unknown, id: number) => ({ ...(entry as EventfdData), id }),
  open(rec: EventfdData): number {
    // eventfd2 takes an unsigned int: the full 64-bit count goes in with a write.
    const fd = sys('eventfd2', [0, (rec.flags & CREATE_FLAGS) | (rec.flags & EFD_SEMAPHORE)], `eventfd ${rec.id}`);
    if (rec.counter) {
      const b = Buffer.alloc(8);
      b.writeBigUInt64LE(rec.counter);
      writeSync(fd, b);
    }
    return fd;
  },
  expect(rec: EventfdData, s, key) {
    s.set(`${key} count`, String(rec.counter));
    s.set(`${key} semaphore`, rec.flags & EFD_SEMAPHORE ? '1' : '0');
  },
  observe(info, s, key) {
    const count = info.extra.get('eventfd-count')?.[0];
    if (count !== undefined) s.set(`${key} count`, String(BigInt('0x' + count)));
    const sem = info.extra.get('eventfd-semaphore')?.[0];
    if (sem !== undefined) s.set(`${key} semaphore`, sem);
  },
} satisfies FdKind<EventfdData>;
