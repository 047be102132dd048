// What every new mapping of an address space gets, a task resource (task/resource.ts): THP
// disabled (PR_SET_THP_DISABLE, mm_entry.thp_disabled) and KSM merging of every mapping
// (PR_SET_MEMORY_MERGE, mm_entry cryo_ksm_merge_any). Set again before the mappings come back,
// as when the program set them: each new one is then made under them.
import { readFileSync } from 'node:fs';
import { PR } from '../../sys/index.js';
import { mm_entrySchema } from '../../image/gen/mm_pb.js';
import { hasField } from '../../image/presence.js';
import type { TaskResource } from '../task/resource.js';

/** Whether KSM merges every mapping of the process (PR_SET_MEMORY_MERGE): /proc/PID/ksm_stat. */
export function ksmMergeAny(pid: number): boolean | null {
  try {
    return /^ksm_merge_any: yes$/m.test(readFileSync(`/proc/${pid}/ksm_stat`, 'utf8'));
  } catch {
    return null; // a kernel without KSM
  }
}

export const mappingModesResource: TaskResource = {
  name: 'mapping modes',
  stage: 'before-mappings',
  perMm: true,
  dump(t, q) {
    const any = ksmMergeAny(t.pid);
    const thp = q.add('prctl', [PR.GET_THP_DISABLE, 0, 0, 0, 0]);
    // Written whenever the kernel has KSM, false too: a forked child inherits the setting.
    return () => ({ mm: { thpDisabled: thp() === 1n, ...(any === null ? {} : { cryoKsmMergeAny: any }) } });
  },
  restore(r, { mm }) {
    if (mm.thpDisabled) r.remote.call('prctl', [PR.SET_THP_DISABLE, 1, 0, 0, 0], 'THP disabled');
    // Set only when it differs from what the task has (from its parent or the stub): a stop less per task.
    if (hasField(mm_entrySchema, mm, 'cryoKsmMergeAny') && ksmMergeAny(r.pid) !== mm.cryoKsmMergeAny) r.remote.call('prctl', [PR.SET_MEMORY_MERGE, mm.cryoKsmMergeAny ? 1 : 0, 0, 0, 0], 'KSM merge-any');
  },
};
