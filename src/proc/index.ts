// Pure parsers of /proc files: text or bytes in, typed values out.
export * from './maps.js';
export * from './stat.js';
export * from './status.js';
export * from './fdinfo.js';
export * from './pagemap.js';
export * from './auxv.js';
export * from './smaps.js';
export * from './sysvipc.js';
export * from './timers.js';
export * from './limits.js';
export * from './igmp.js';
export * from './mountinfo.js';
export * from './net-tcp.js';
export * from './timens.js';
export * from './id-map.js';
