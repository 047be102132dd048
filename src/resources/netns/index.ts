// A tree's own network namespace (the root's, shared by the whole tree): links, addresses,
// routes, sysctls and nftables rules, one module each; state.ts reads and rebuilds them,
// images.ts maps them to CRIU's images.
export { readNetns, netnsProblems, NetnsRestore, type NetnsState } from './state.js';
export { writeNetnsImages, readNetnsImages } from './images.js';
