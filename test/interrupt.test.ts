// The engine's interrupt flag (sys/interrupt.ts): SIGINT/SIGTERM/SIGHUP set it, checkInterrupt()
// throws once it is set, and inside uninterrupted() (cleanup that must run to its end: reaping a
// dump's snapshots) it stays quiet, also for a signal that arrives meanwhile, which is still
// there afterwards.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { armInterrupts, checkInterrupt, interruptSignal, uninterrupted, InterruptedError } from '../src/sys/interrupt.js';
import { sys } from '../src/sys/libc.js';

const SIGINT = 2;

/** Sends the signal to this thread: the native handler has run when the call returns. */
function raise(sig: number): void {
  sys('tgkill', [process.pid, sys('gettid', []), sig]);
}

describe('interrupts', () => {
  it('a signal inside uninterrupted() leaves its checks quiet and is there afterwards', () => {
    const armed = armInterrupts([SIGINT]);
    try {
      assert.doesNotThrow(() => checkInterrupt());
      uninterrupted(() => {
        raise(SIGINT);
        assert.doesNotThrow(() => checkInterrupt(), 'quiet inside');
        assert.equal(interruptSignal(), 0);
      });
      assert.equal(interruptSignal(), SIGINT);
      assert.throws(() => checkInterrupt(), (e) => e instanceof InterruptedError && e.signal === SIGINT);
    } finally {
      armed.disarm();
    }
  });
});
