// task_core_entry.task_state: CRIU's TASK_* values (criu/include/pstree.h), which the schema
// keeps as a plain uint32.
export const TASK_STATE = {
  ALIVE: 1,
  DEAD: 2,
  STOPPED: 3,
} as const;
