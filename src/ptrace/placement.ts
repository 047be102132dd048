// Where in a stopped task's address space cryo may put what it injects, from its maps: the
// scratch area in the largest hole (away from the stack), and a signal frame on the task's own
// stack below the red zone (only on a mapping that is recognisably a stack).
import type { MapsEntry } from '../proc/index.js';

const PAGE = 4096n;
/** The x86-64 ABI's red zone below rsp, which leaf functions use without moving rsp. */
const RED_ZONE = 128n;

/**
 * A free place for `size` bytes: just below the lowest mapping above the largest hole (the one
 * between the heap and the libraries), a page away from it; not next to the stack.
 */
export function freeSpot(maps: MapsEntry[], size: number): bigint | null {
  let best: bigint | null = null;
  let bestGap = 0n;
  for (let i = 1; i < maps.length; i++) {
    const next = maps[i]!;
    if (next.path === '[stack]' || next.start >= 1n << 47n) continue;
    const gap = next.start - maps[i - 1]!.end;
    if (gap > bestGap) {
      bestGap = gap;
      best = next.start;
    }
  }
  if (best === null || bestGap < BigInt(size) + 4n * PAGE) return null;
  return best - BigInt(size) - PAGE;
}

/**
 * Where a frame of `size` bytes goes below the red zone of the stack `sp` is on (64-byte
 * aligned, as the kernel puts a signal frame), or null if `sp` is not on a writable private
 * mapping that is recognisably a stack with room for it: [stack], or a pthread stack (anonymous,
 * right above its PROT_NONE guard). Elsewhere (a Go goroutine stack in a heap arena) the memory
 * below rsp may be someone else's.
 */
export function stackFrameSpot(maps: MapsEntry[], sp: bigint, size: number): bigint | null {
  const at = (sp - RED_ZONE - BigInt(size)) & ~63n;
  const i = maps.findIndex((m) => m.start < sp && sp <= m.end);
  const m = maps[i];
  if (!m || at < m.start || !m.write || m.shared) return null;
  const below = maps[i - 1];
  const guarded = m.path === '' && m.inode === 0 && below !== undefined && below.end === m.start && !below.read && !below.write && !below.exec;
  if (m.path !== '[stack]' && !guarded) return null;
  return at;
}
