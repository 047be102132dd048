// The limits of an IPC namespace (CRIU's ipc_var_entry): SysV sem/msg/shm sysctls, the POSIX
// mqueue ones, and the next-id counters. Read and written through /proc/sys, which answers for
// the IPC namespace of the calling thread (the ns helper, after setns).
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { UserError } from '../../util/errors.js';

/** Field name of ipc_var_entry (camelCase, as generated) -> sysctl path. */
export const IPC_VAR_FILES = {
  msgCtlmax: 'kernel/msgmax',
  msgCtlmnb: 'kernel/msgmnb',
  msgCtlmni: 'kernel/msgmni',
  autoMsgmni: 'kernel/auto_msgmni',
  shmCtlmax: 'kernel/shmmax',
  shmCtlall: 'kernel/shmall',
  shmCtlmni: 'kernel/shmmni',
  shmRmidForced: 'kernel/shm_rmid_forced',
  mqQueuesMax: 'fs/mqueue/queues_max',
  mqMsgMax: 'fs/mqueue/msg_max',
  mqMsgsizeMax: 'fs/mqueue/msgsize_max',
  mqMsgDefault: 'fs/mqueue/msg_default',
  mqMsgsizeDefault: 'fs/mqueue/msgsize_default',
} as const;

/** The counters: -1 (unset) is left out of the image, as an absent optional field. */
export const IPC_NEXT_IDS = { msgNextId: 'kernel/msg_next_id', semNextId: 'kernel/sem_next_id', shmNextId: 'kernel/shm_next_id' } as const;

/** JSON-safe values (shm limits are 64-bit: decimal strings); a sysctl this kernel lacks is absent. */
export interface IpcVars {
  semCtls: number[];
  values: Partial<Record<keyof typeof IPC_VAR_FILES, string>>;
  nextIds: Partial<Record<keyof typeof IPC_NEXT_IDS, number>>;
}

const path = (p: string) => `/proc/sys/${p}`;

function writeSysctl(p: string, value: string): void {
  try {
    writeFileSync(path(p), value);
  } catch (e) {
    throw new UserError(`cannot set ${p.replace(/\//g, '.')} to ${value} in the new IPC namespace: ${(e as Error).message}`);
  }
}

function read(p: string): string | undefined {
  return existsSync(path(p)) ? readFileSync(path(p), 'utf8').trim() : undefined;
}

export function dumpIpcVars(): IpcVars {
  const values: IpcVars['values'] = {};
  for (const [k, p] of Object.entries(IPC_VAR_FILES)) {
    const v = read(p);
    if (v !== undefined) values[k as keyof typeof IPC_VAR_FILES] = v;
  }
  const nextIds: IpcVars['nextIds'] = {};
  for (const [k, p] of Object.entries(IPC_NEXT_IDS)) {
    const v = Number(read(p) ?? -1);
    if (v >= 0) nextIds[k as keyof typeof IPC_NEXT_IDS] = v;
  }
  return { semCtls: (read('kernel/sem') ?? '').split(/\s+/).filter(Boolean).map(Number), values, nextIds };
}

/** Limits first (the objects must fit in them); only those that differ are written. */
export function restoreIpcLimits(v: IpcVars): void {
  const write = (p: string, want: string) => {
    if (read(p) !== undefined && read(p) !== want) writeSysctl(p, want);
  };
  if (v.semCtls.length === 4) write('kernel/sem', v.semCtls.join('\t'));
  for (const [k, want] of Object.entries(v.values)) write(IPC_VAR_FILES[k as keyof typeof IPC_VAR_FILES], want);
}

/**
 * The counters last: creating the objects with their old ids used them up (the kernel sets a
 * counter back to -1 once it served). An unset one (-1) stays so: writing -1 is refused.
 */
export function restoreIpcNextIds(v: IpcVars): void {
  for (const [k, p] of Object.entries(IPC_NEXT_IDS)) {
    const id = v.nextIds[k as keyof typeof IPC_NEXT_IDS];
    if (id !== undefined) writeSysctl(p, String(id));
  }
}
