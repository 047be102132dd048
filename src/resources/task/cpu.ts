// The CPU a checkpoint may rely on (cpuinfo.img, CRIU's format) and whether this one provides it.
//
// A process picks code paths by what CPUID said when it started (glibc's IFUNCs choose AVX2 or
// AVX-512 string functions, math libraries their kernels), and its saved XSAVE state holds the
// components the old CPU had: restored on a CPU lacking one, it dies of SIGILL later, or its
// registers cannot be put back. So the dump records the CPU, and the restore compares what
// --cpu-cap names (CRIU's option and words):
//   fpu   the XSAVE components enabled (XCR0): each one in the image must be enabled here;
//   ins   instruction-set features (SSE..AVX-512, AMX, BMI, AES, ...): each must be present here;
//   cpu   every recorded CPUID feature bit but a few that describe the machine (hypervisor, ...);
//   all   fpu, ins and cpu;  none  nothing.
// cryo's default is fpu,ins: what a program can actually trip over, without refusing a restore
// for a bit no program uses. (CRIU's default, fpu alone, does not see a missing instruction set
// whose registers are older ones: BMI2, AES, SHA, ... use the general or SSE registers.)
// The XSAVE area itself needs no conversion between CPUs that both have its components: the
// images keep it as words per component (image/xsave.ts), laid out for the local CPU at restore.
import { create } from '@bufbuild/protobuf';
import { cpuid, xgetbv } from '../../sys/index.js';
import { cpuinfo_x86_entrySchema, cpuinfo_x86_entry_vendor, cpuinfo_entrySchema, type cpuinfo_x86_entry, type cpuinfo_entry } from '../../image/gen/cpuinfo_pb.js';
import { UserError } from '../../util/errors.js';
import { CPU_CAPS, DEFAULT_CPU_CAP } from '../../util/option-defaults.js';
import { CPUID_WORDS, NCAPINTS, CAPABILITY_VER, INSTRUCTION_FEATURES, VOLATILE_FEATURES, XFEATURE_NAMES, featureName } from './cpu-features.js';

export { CPU_CAPS, DEFAULT_CPU_CAP };
export type CpuCap = 'fpu' | 'ins' | 'cpu';

/** `--cpu-cap` text (comma-separated) as the set of checks to make. */
export function parseCpuCap(text: string): Set<CpuCap> {
  const out = new Set<CpuCap>();
  for (const w of text.split(',').map((s) => s.trim()).filter(Boolean)) {
    if (w === 'all') ['fpu', 'ins', 'cpu'].forEach((c) => out.add(c as CpuCap));
    else if (w === 'none') continue;
    else if (w === 'fpu' || w === 'ins' || w === 'cpu') out.add(w);
    else throw new UserError(`--cpu-cap: unknown '${w}' (one or more of ${CPU_CAPS.join(', ')}, comma-separated)`);
  }
  return out;
}

/** This machine's CPU as cpuinfo.img records it. */
export function thisCpu(): cpuinfo_x86_entry {
  const v = cpuid(0);
  const vendorText = Buffer.alloc(12);
  vendorText.writeUInt32LE(v.ebx, 0);
  vendorText.writeUInt32LE(v.edx, 4);
  vendorText.writeUInt32LE(v.ecx, 8);
  const vendor = vendorText.toString('latin1');
  const sig = cpuid(1).eax;
  const baseFamily = (sig >> 8) & 0xf;
  const family = baseFamily === 0xf ? baseFamily + ((sig >> 20) & 0xff) : baseFamily;
  const model = baseFamily === 0x6 || baseFamily === 0xf ? (((sig >> 16) & 0xf) << 4) | ((sig >> 4) & 0xf) : (sig >> 4) & 0xf;
  const maxLeaf = v.eax;
  const maxExt = cpuid(0x80000000).eax >>> 0;
  const capability = new Array<number>(NCAPINTS).fill(0);
  for (const [word, src] of Object.entries(CPUID_WORDS)) {
    const available = src.leaf >= 0x80000000 ? src.leaf <= maxExt : src.leaf <= maxLeaf;
    if (available) capability[Number(word)] = cpuid(src.leaf, src.sub)[src.reg] >>> 0;
  }
  const xsave = (capability[4]! >> 26) & 1 ? cpuid(0xd, 0) : null;
  const osxsave = (capability[4]! >> 27) & 1;
  return create(cpuinfo_x86_entrySchema, {
    vendorId: vendor === 'GenuineIntel' ? cpuinfo_x86_entry_vendor.INTEL : vendor === 'AuthenticAMD' ? cpuinfo_x86_entry_vendor.AMD : cpuinfo_x86_entry_vendor.UNKNOWN,
    cpuFamily: family,
    model,
    stepping: sig & 0xf,
    capabilityVer: CAPABILITY_VER,
    capability,
    modelId: modelName(maxExt),
    xfeaturesMask: osxsave ? xgetbv(0) : 0n,
    xsaveSize: xsave?.ebx ?? 0,
    xsaveSizeMax: xsave?.ecx ?? 0,
  });
}

function modelName(maxExt: number): string {
  if (maxExt < 0x80000004) return '';
  const b = Buffer.alloc(48);
  for (let i = 0; i < 3; i++) {
    const r = cpuid(0x80000002 + i);
    [r.eax, r.ebx, r.ecx, r.edx].forEach((x, k) => b.writeUInt32LE(x >>> 0, i * 16 + k * 4));
  }
  return b.toString('latin1').replace(/\0.*$/s, '').trim();
}

export function cpuinfoImage(): cpuinfo_entry {
  return create(cpuinfo_entrySchema, { x86Entry: [thisCpu()] });
}

/**
 * What this CPU lacks of the one the image was dumped on, by the checks in `caps`: one line per
 * missing feature ([] when it can run the images).
 */
export function missingFeatures(image: cpuinfo_x86_entry, here: cpuinfo_x86_entry, caps: Set<CpuCap>): string[] {
  const out: string[] = [];
  if (caps.has('fpu')) {
    const lost = image.xfeaturesMask & ~here.xfeaturesMask;
    for (let bit = 0; bit < 64; bit++) {
      if (lost & (1n << BigInt(bit))) out.push(`XSAVE component ${XFEATURE_NAMES[bit] ?? `bit ${bit}`} (xfeatures bit ${bit})`);
    }
  }
  if (caps.has('ins') || caps.has('cpu')) {
    for (let word = 0; word < image.capability.length; word++) {
      const lost = (image.capability[word]! & ~(here.capability[word] ?? 0)) >>> 0;
      for (let bit = 0; bit < 32; bit++) {
        if (!(lost & (1 << bit))) continue;
        const name = featureName(word, bit);
        const wanted = (caps.has('cpu') && !VOLATILE_FEATURES.has(name)) || (caps.has('ins') && INSTRUCTION_FEATURES.has(name));
        if (wanted) out.push(`CPU feature ${name}`);
      }
    }
  }
  return out;
}

/** Throws, naming each missing feature, when this CPU cannot run images dumped on `image`. */
export function checkCpu(image: cpuinfo_entry, caps: Set<CpuCap>): void {
  if (!caps.size) return;
  const x86 = image.x86Entry[0];
  if (!x86) throw new UserError('cpuinfo.img has no x86 entry: the images come from another architecture');
  const missing = missingFeatures(x86, thisCpu(), caps);
  if (missing.length) {
    throw new UserError(`this CPU lacks what the images' CPU had (--cpu-cap ${[...caps].join(',')}): ${missing.join(', ')}`);
  }
}
