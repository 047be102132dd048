export * from './tracee.js';
export * from './remote.js';
export * from './scratch.js';
export * from './syscall-site.js';
export * from './clone.js';
