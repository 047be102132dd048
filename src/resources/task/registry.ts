// The task-level resources behind the TaskResource interface (resource.ts): the dump merges
// their fields, the restore adapts and restores them by iterating this list, at each one's stage.
import type { TaskFields, TaskResource } from './resource.js';
import { rlimitsResource } from './rlimits.js';
import { dumpableResource } from './attributes.js';
import { mappingModesResource } from '../mm/modes.js';
import type { DumpTask, ReadQueue } from '../context.js';

export const TASK_RESOURCES: readonly TaskResource[] = [mappingModesResource, rlimitsResource, dumpableResource];

/** Every resource's image fields for the frozen task, merged (each sets fields of its own), once `q` ran. */
export function dumpTaskResources(t: DumpTask, q: ReadQueue): () => Required<TaskFields> {
  const read = TASK_RESOURCES.map((res) => res.dump(t, q));
  return () => {
    const out: Required<TaskFields> = { tc: {}, mm: {} };
    for (const f of read.map((r) => r())) {
      Object.assign(out.tc, f.tc);
      Object.assign(out.mm, f.mm);
    }
    return out;
  };
}
