// The kernel boundary: everything above imports from here, never from koffi.
export * from './errno.js';
export * from './consts.js';
export * from './nr.js';
export { sys, sysTry, posixSpawn, addressOf, alignedBuffer, type SysArg } from './libc.js';
export * from './process.js';
export * from './ptrace.js';
export { cpuid, xsaveLayout, cpuXsaveLayout, xgetbv } from './cpuid.js';
export * from './socket.js';
export * from './sockopt-names.js';
export * from './interrupt.js';
export * from './tty.js';
export * from './tcp.js';
export * from './netlink.js';
export * from './netns.js';
export * from './mcast.js';
export * from './nsfs.js';
export * from './mqueue.js';
export * from './guard-link.js';
