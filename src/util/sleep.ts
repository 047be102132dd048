// A synchronous sleep: the engine is synchronous (ptrace calls must come from the thread that
// attached), so waiting for the kernel to act is a blocking wait, not a timer.

/** Blocks the calling thread for `ms` milliseconds. */
export function sleepMs(ms: number): void {
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);
}
