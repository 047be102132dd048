// Fault injection: CRYO_FAIL_AT=<step> makes that dump or restore step throw, so tests can prove
// a failure at any point leaves the target running (dump) or leaves nothing behind (restore).

export const DUMP_STEPS = [
  'dump:collect',
  'dump:seize',
  'dump:task',
  'dump:mm',
  'dump:namespaces',
  'dump:mounts',
  'dump:pages',
  'dump:files',
  'dump:write',
  'dump:inventory',
] as const;

export const RESTORE_STEPS = [
  'restore:read',
  'restore:cgroups',
  'restore:netns',
  'restore:stub',
  'restore:timens',
  'restore:cgns',
  'restore:userns',
  'restore:fork',
  'restore:namespaces',
  'restore:mounts',
  'restore:mm',
  'restore:pages',
  'restore:vdso',
  'restore:files',
  'restore:task',
  'restore:creds',
  'restore:regs',
  'restore:resume',
] as const;

export type FailStep = (typeof DUMP_STEPS)[number] | (typeof RESTORE_STEPS)[number];

export class InjectedFailure extends Error {
  constructor(step: string) {
    super(`injected failure at ${step} (CRYO_FAIL_AT)`);
    this.name = 'InjectedFailure';
  }
}

export function failpoint(step: FailStep): void {
  if (process.env.CRYO_FAIL_AT === step) throw new InjectedFailure(step);
}
