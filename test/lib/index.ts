// Test harness for cryo's integration tests: see target.ts (processes), cryo.ts (CLI, images),
// build.ts (C targets) and proc.ts (/proc readers).
export * from './build.js';
export * from './cryo.js';
export * from './proc.js';
export * from './target.js';
export * from './tree.js';
export * from './pty.js';
export * from './prereq.js';
export * from './container.js';
export * from './cgroup.js';
