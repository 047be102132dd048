// The interface a task-level resource implements: state of a whole process (not of one of its
// threads, not of an fd) that the task's core or mm image keeps, with its dump and its restore
// side by side. The resources are listed in registry.ts; dump/task.ts merges each one's fields
// into the images, restore/criu-compat.ts lets each adapt the images before any task exists,
// and restore/task.ts runs each at its stage. Moved onto it so far: rlimits, the dumpable flag
// and the mapping modes (mm/modes.ts: THP disabled, KSM merge-any); the others (cgroups, itimers, attributes, session and group, ...) are still called by
// name from restore/task.ts, in the order commented there, and move one by one.
import type { DescMessage, MessageInitShape } from '@bufbuild/protobuf';
import type { task_core_entry, task_core_entrySchema } from '../../image/gen/core_pb.js';
import type { mm_entry, mm_entrySchema } from '../../image/gen/mm_pb.js';
import type { DumpTask, ReadQueue, RestoreTask } from '../context.js';

/** Some fields of a message, as create() takes them (nested messages as plain objects too). */
type FieldsOf<Desc extends DescMessage, M> = Partial<Omit<Exclude<MessageInitShape<Desc>, M>, '$typeName'>>;

/** Image fields a resource's dump sets: of the task's task_core_entry and of its mm_entry. */
export interface TaskFields {
  tc?: FieldsOf<typeof task_core_entrySchema, task_core_entry>;
  mm?: FieldsOf<typeof mm_entrySchema, mm_entry>;
}

/** A task's images as read back (decoded messages: optional fields answer hasField). */
export interface TaskImageFields {
  pid: number;
  tc: task_core_entry;
  mm: mm_entry;
}

/**
 * Where in a task's restore (restore/task.ts) a resource goes back. 'before-mappings': once
 * the inherited memory is gone and the mm fields are set, before the image's mappings are made
 * (modes every new mapping gets: THP disabled, KSM merge-any). 'after-children': once its
 * children are forked and before its other threads (a child may keep a hard limit above its
 * parent's, which it could not raise again without CAP_SYS_RESOURCE). 'after-creds': once every
 * thread has its credentials (a change of credentials resets the dumpable flag).
 */
export type TaskStage = 'before-mappings' | 'after-children' | 'after-creds';

export interface TaskResource {
  /** What it is, for the log and errors ('rlimits'). */
  readonly name: string;
  readonly stage: TaskStage;
  /**
   * Part of the address space (mm_entry): a task sharing its parent's (CLONE_VM) has it
   * restored already, by the parent.
   */
  readonly perMm?: boolean;
  /**
   * Reads it from the frozen task (its leader) as image fields: its injected calls go into `q`,
   * which runs them with the task's other reads (a stop or two for all), and the function it
   * returns gives the fields once `q` ran.
   */
  dump(t: DumpTask, q: ReadQueue): () => TaskFields;
  /**
   * Before any task is made: adapts, in place and with a warning, what cannot be restored as
   * recorded (a hard limit cryo may not set), or throws naming the field.
   */
  adapt?(img: TaskImageFields, warn: (text: string) => void): void;
  /** Puts it back into the task being restored (its leader), from its images. */
  restore(r: RestoreTask, img: TaskImageFields): void;
}
