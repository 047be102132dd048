// Sealed mappings (mseal(2), VmFlags sl): vma_entry cryo_sealed. The dump only records the seal;
// the restore seals again once nothing more is done to the mappings.
import type { RestoreTask } from '../context.js';
import { hex } from '../../util/errors.js';
import type { MemoryImage } from './restore.js';

/**
 * Seals the mappings that were sealed (mseal): the last thing done to the task's memory, once its
 * children were forked (a child inherits the seal, and would have its own restore refused) and
 * nothing is left to map, protect or advise in them.
 */
export function sealMappings(r: RestoreTask, img: MemoryImage): void {
  for (const v of img.vmas) {
    if (v.cryoSealed) r.remote.call('mseal', [v.start, v.end - v.start, 0], `mseal ${hex(v.start)}-${hex(v.end)}`);
  }
}
