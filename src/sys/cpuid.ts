// CPUID from JavaScript: the XSAVE layout (where each state component sits in the buffer that
// PTRACE_GETREGSET NT_X86_XSTATE returns) is CPU-specific — AMD and Intel place AVX-512 state at
// different offsets — and only CPUID leaf 0xD tells it. We run a 34-byte function that executes
// CPUID, from a private executable page, through koffi.
import koffi from 'koffi';

const libc = koffi.load('libc.so.6');
const mmap = libc.func('void *mmap(void *addr, size_t len, int prot, int flags, int fd, long off)');

// push rbx; mov r8,rdx; mov eax,edi; mov ecx,esi; cpuid;
// mov [r8],eax; mov [r8+4],ebx; mov [r8+8],ecx; mov [r8+12],edx; pop rbx; ret
const CODE = [
  0x53, 0x49, 0x89, 0xd0, 0x89, 0xf8, 0x89, 0xf1, 0x0f, 0xa2, 0x41, 0x89, 0x00, 0x41, 0x89, 0x58, 0x04,
  0x41, 0x89, 0x48, 0x08, 0x41, 0x89, 0x50, 0x0c, 0x5b, 0xc3,
];

// mov ecx,edi; xgetbv; shl rdx,32; or rax,rdx; ret — in a page of its own.
const XGETBV_CODE = [0x89, 0xf9, 0x0f, 0x01, 0xd0, 0x48, 0xc1, 0xe2, 0x20, 0x48, 0x09, 0xd0, 0xc3];

let fn: ((leaf: number, sub: number, out: Buffer) => void) | null = null;
let xgetbvFn: ((xcr: number) => bigint) | null = null;

function cpuidFn(): (leaf: number, sub: number, out: Buffer) => void {
  if (fn) return fn;
  const page = mmap(null, 4096, 7, 0x22, -1, 0); // PROT_RWX, MAP_PRIVATE|MAP_ANONYMOUS
  if (!page || koffi.address(page) === 0xffffffffffffffffn) throw new Error('cannot map a page for CPUID');
  new Uint8Array(koffi.view(page, 4096)).set(CODE);
  const xpage = mmap(null, 4096, 7, 0x22, -1, 0);
  if (!xpage || koffi.address(xpage) === 0xffffffffffffffffn) throw new Error('cannot map a page for XGETBV');
  new Uint8Array(koffi.view(xpage, 4096)).set(XGETBV_CODE);
  const xproto = koffi.proto('uint64_t cryo_xgetbv(uint32_t xcr)');
  xgetbvFn = (xcr) => BigInt(koffi.call(xpage, xproto, xcr));
  const proto = koffi.proto('void cryo_cpuid(uint32_t leaf, uint32_t sub, void *out)');
  fn = (leaf, sub, out) => koffi.call(page, proto, leaf, sub, out);
  return fn;
}

export function cpuid(leaf: number, sub = 0): { eax: number; ebx: number; ecx: number; edx: number } {
  const out = Buffer.alloc(16);
  cpuidFn()(leaf, sub, out);
  return { eax: out.readUInt32LE(0), ebx: out.readUInt32LE(4), ecx: out.readUInt32LE(8), edx: out.readUInt32LE(12) };
}

let cpuLayout: ReadonlyMap<number, { offset: number; size: number }> | null = null;

/** xsaveLayout() of this CPU, read once (the CPU does not change under a running process). */
export function cpuXsaveLayout(): ReadonlyMap<number, { offset: number; size: number }> {
  return (cpuLayout ??= xsaveLayout());
}

/** Standard-format offset and size of each XSAVE component this CPU supports (bit -> where). */
export function xsaveLayout(): Map<number, { offset: number; size: number }> {
  const out = new Map<number, { offset: number; size: number }>();
  const top = cpuid(0xd, 0);
  const supported = BigInt(top.eax) | (BigInt(top.edx) << 32n);
  for (let bit = 2; bit < 64; bit++) {
    if (!(supported & (1n << BigInt(bit)))) continue;
    const c = cpuid(0xd, bit);
    if (c.eax) out.set(bit, { offset: c.ebx, size: c.eax });
  }
  return out;
}

/** XGETBV: extended control register `xcr` (0: XCR0, the XSAVE features the kernel enabled). */
export function xgetbv(xcr = 0): bigint {
  cpuidFn();
  return xgetbvFn!(xcr);
}
