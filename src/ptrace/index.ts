export * from './tracee.js';
export * from './remote.js';
export * from './scratch.js';
export * from './syscall-site.js';
export * from './clone.js';
export * from './safe-remote.js';
export * from './sigframe.js';
export * from './seized.js';
