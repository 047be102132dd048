// SIGINT/SIGTERM/SIGHUP while the engine runs. The dump is synchronous (one thread does every
// ptrace call), so Node's process.on('SIGINT') callbacks would only run once it is over — too late
// to put the target back. Instead a native handler of a few bytes, written into a private
// executable page, stores the signal number into a word of that page; the engine polls the word
// between steps (checkInterrupt) and unwinds through its normal rollback path.
import koffi from 'koffi';
import { sys } from './libc.js';

const libc = koffi.load('libc.so.6');
const mmap = libc.func('void *mmap(void *addr, size_t len, int prot, int flags, int fd, long off)');

const FLAG_OFFSET = 2048;
const RESTORER_OFFSET = 16;
// handler(int sig): mov [rip + (FLAG_OFFSET - 6)], edi; ret
const HANDLER = [0x89, 0x3d, ...le32(FLAG_OFFSET - 6), 0xc3];
// The kernel returns from a handler through sa_restorer: mov eax, 15 (rt_sigreturn); syscall
const RESTORER = [0xb8, 0x0f, 0x00, 0x00, 0x00, 0x0f, 0x05];

const SA_RESTART = 0x10000000;
const SA_RESTORER = 0x04000000;
const SIGACTION_SIZE = 32; // struct kernel_sigaction: handler, flags, restorer, mask (8 bytes each)

function le32(v: number): number[] {
  return [v & 0xff, (v >> 8) & 0xff, (v >> 16) & 0xff, (v >>> 24) & 0xff];
}

let page: { addr: bigint; flag: Int32Array } | null = null;

function handlerPage(): { addr: bigint; flag: Int32Array } {
  if (page) return page;
  const p = mmap(null, 4096, 7, 0x22, -1, 0); // PROT_RWX, MAP_PRIVATE|MAP_ANONYMOUS
  const addr = p ? koffi.address(p) : 0n;
  if (!addr || addr === 0xffffffffffffffffn) throw new Error('cannot map a page for the interrupt handler');
  const bytes = new Uint8Array(koffi.view(p, 4096));
  bytes.set(HANDLER, 0);
  bytes.set(RESTORER, RESTORER_OFFSET);
  page = { addr, flag: new Int32Array(bytes.buffer, bytes.byteOffset + FLAG_OFFSET, 1) };
  return page;
}

export class InterruptedError extends Error {
  constructor(readonly signal: number) {
    super(`interrupted by signal ${signal}`);
    this.name = 'InterruptedError';
  }
}

/** uninterrupted() calls running: checks are quiet while any is. */
let quiet = 0;

/** The signal that arrived since interrupts were armed, or 0 (0 inside uninterrupted()). */
export function interruptSignal(): number {
  return page && !quiet ? page.flag[0]! : 0;
}

/** Throws InterruptedError once one of the armed signals has arrived (not inside uninterrupted()). */
export function checkInterrupt(): void {
  if (page && !quiet && page.flag[0]) throw new InterruptedError(page.flag[0]);
}

/**
 * Runs `fn` (cleanup that must run to its end, such as reaping a dump's snapshot) with
 * checkInterrupt quiet, also for a signal that arrives meanwhile (a SIGINT during the reap once
 * left the snapshot a zombie of the target's); a signal that arrived before or meanwhile is
 * still there afterwards.
 */
export function uninterrupted<T>(fn: () => T): T {
  quiet++;
  try {
    return fn();
  } finally {
    quiet--;
  }
}

/**
 * Catches `signals` with the flag-setting handler until disarm() is called, which puts the
 * previous dispositions back. SA_RESTART: blocking calls (wait4, reads) go on after the handler.
 */
export function armInterrupts(signals: number[]): { disarm(): void } {
  const p = handlerPage();
  p.flag[0] = 0;
  const act = Buffer.alloc(SIGACTION_SIZE);
  act.writeBigUInt64LE(p.addr, 0);
  act.writeBigUInt64LE(BigInt(SA_RESTART | SA_RESTORER), 8);
  act.writeBigUInt64LE(p.addr + BigInt(RESTORER_OFFSET), 16);
  const saved: [number, Buffer][] = [];
  for (const sig of signals) {
    const old = Buffer.alloc(SIGACTION_SIZE);
    sys('rt_sigaction', [sig, act, old, 8], `signal ${sig}`);
    saved.push([sig, old]);
  }
  let armed = true;
  return {
    disarm() {
      if (!armed) return;
      armed = false;
      for (const [sig, old] of saved) sys('rt_sigaction', [sig, old, 0, 8], `signal ${sig}`);
    },
  };
}
