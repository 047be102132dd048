// x86 CPU feature bits as CRIU's cpuinfo.img stores them: the kernel's x86_capability words
// (word numbers and bit positions are the kernel's cpufeatures.h, a fact of the ABI), with the
// names /proc/cpuinfo gives them. Only the words CPUID fills directly are recorded; the kernel's
// own synthetic words (3, 7, 8, 11, ...) are left 0 and never compared.

/** Where each recorded word comes from: CPUID leaf, subleaf, register. */
export const CPUID_WORDS: Record<number, { leaf: number; sub: number; reg: 'eax' | 'ebx' | 'ecx' | 'edx' }> = {
  0: { leaf: 0x1, sub: 0, reg: 'edx' },
  1: { leaf: 0x80000001, sub: 0, reg: 'edx' },
  4: { leaf: 0x1, sub: 0, reg: 'ecx' },
  6: { leaf: 0x80000001, sub: 0, reg: 'ecx' },
  9: { leaf: 0x7, sub: 0, reg: 'ebx' },
  10: { leaf: 0xd, sub: 1, reg: 'eax' },
  12: { leaf: 0x7, sub: 1, reg: 'eax' },
  13: { leaf: 0x80000008, sub: 0, reg: 'ebx' },
  16: { leaf: 0x7, sub: 0, reg: 'ecx' },
  18: { leaf: 0x7, sub: 0, reg: 'edx' },
};

/** Number of capability words written (CRIU's capability_ver 2 layout). */
export const NCAPINTS = 20;
export const CAPABILITY_VER = 2;

/** Feature names by word and bit. */
export const FEATURE_NAMES: Record<number, Record<number, string>> = {
  0: { 0: 'fpu', 1: 'vme', 2: 'de', 3: 'pse', 4: 'tsc', 5: 'msr', 6: 'pae', 7: 'mce', 8: 'cx8', 9: 'apic', 11: 'sep', 12: 'mtrr', 13: 'pge', 14: 'mca', 15: 'cmov', 16: 'pat', 17: 'pse36', 19: 'clflush', 23: 'mmx', 24: 'fxsr', 25: 'sse', 26: 'sse2', 27: 'ss', 28: 'ht' },
  1: { 11: 'syscall', 20: 'nx', 22: 'mmxext', 26: 'pdpe1gb', 27: 'rdtscp', 29: 'lm', 30: '3dnowext', 31: '3dnow' },
  4: { 0: 'pni', 1: 'pclmulqdq', 3: 'monitor', 5: 'vmx', 9: 'ssse3', 12: 'fma', 13: 'cx16', 17: 'pcid', 19: 'sse4_1', 20: 'sse4_2', 21: 'x2apic', 22: 'movbe', 23: 'popcnt', 24: 'tsc_deadline_timer', 25: 'aes', 26: 'xsave', 27: 'osxsave', 28: 'avx', 29: 'f16c', 30: 'rdrand', 31: 'hypervisor' },
  6: { 0: 'lahf_lm', 2: 'svm', 5: 'abm', 6: 'sse4a', 7: 'misalignsse', 8: '3dnowprefetch', 11: 'xop', 16: 'fma4', 21: 'tbm', 29: 'mwaitx' },
  9: { 0: 'fsgsbase', 1: 'tsc_adjust', 3: 'bmi1', 4: 'hle', 5: 'avx2', 7: 'smep', 8: 'bmi2', 9: 'erms', 10: 'invpcid', 11: 'rtm', 14: 'mpx', 16: 'avx512f', 17: 'avx512dq', 18: 'rdseed', 19: 'adx', 20: 'smap', 21: 'avx512ifma', 23: 'clflushopt', 24: 'clwb', 26: 'avx512pf', 27: 'avx512er', 28: 'avx512cd', 29: 'sha_ni', 30: 'avx512bw', 31: 'avx512vl' },
  10: { 0: 'xsaveopt', 1: 'xsavec', 2: 'xgetbv1', 3: 'xsaves' },
  12: { 4: 'avx_vnni', 5: 'avx512_bf16' },
  13: { 0: 'clzero', 9: 'wbnoinvd' },
  16: { 1: 'avx512vbmi', 2: 'umip', 3: 'pku', 4: 'ospke', 5: 'waitpkg', 6: 'avx512_vbmi2', 8: 'gfni', 9: 'vaes', 10: 'vpclmulqdq', 11: 'avx512_vnni', 12: 'avx512_bitalg', 14: 'avx512_vpopcntdq', 16: 'la57', 22: 'rdpid', 25: 'cldemote', 27: 'movdiri', 28: 'movdir64b', 29: 'enqcmd' },
  18: { 2: 'avx512_4vnniw', 3: 'avx512_4fmaps', 4: 'fsrm', 8: 'avx512_vp2intersect', 10: 'md_clear', 14: 'serialize', 16: 'tsxldtrk', 20: 'ibt', 22: 'amx_bf16', 23: 'avx512_fp16', 24: 'amx_tile', 25: 'amx_int8' },
};

/** Instructions a program may use once it has seen them in CPUID (what --cpu-cap ins compares). */
export const INSTRUCTION_FEATURES = new Set([
  'cx8', 'cmov', 'clflush', 'mmx', 'fxsr', 'sse', 'sse2',
  'syscall', 'mmxext', 'rdtscp', 'lm', '3dnowext', '3dnow',
  'pni', 'pclmulqdq', 'ssse3', 'fma', 'cx16', 'sse4_1', 'sse4_2', 'movbe', 'popcnt', 'aes', 'xsave', 'avx', 'f16c', 'rdrand',
  'lahf_lm', 'abm', 'sse4a', '3dnowprefetch', 'xop', 'fma4', 'tbm', 'mwaitx',
  'fsgsbase', 'bmi1', 'hle', 'avx2', 'bmi2', 'erms', 'rtm', 'mpx', 'avx512f', 'avx512dq', 'rdseed', 'adx', 'avx512ifma', 'clflushopt', 'clwb', 'avx512pf', 'avx512er', 'avx512cd', 'sha_ni', 'avx512bw', 'avx512vl',
  'xsaveopt', 'xsavec', 'xgetbv1', 'xsaves',
  'avx_vnni', 'avx512_bf16', 'clzero', 'wbnoinvd',
  'avx512vbmi', 'pku', 'waitpkg', 'avx512_vbmi2', 'gfni', 'vaes', 'vpclmulqdq', 'avx512_vnni', 'avx512_bitalg', 'avx512_vpopcntdq', 'rdpid', 'cldemote', 'movdiri', 'movdir64b', 'enqcmd',
  'avx512_4vnniw', 'avx512_4fmaps', 'fsrm', 'avx512_vp2intersect', 'serialize', 'tsxldtrk', 'amx_bf16', 'avx512_fp16', 'amx_tile', 'amx_int8',
]);

/** Bits --cpu-cap cpu does not compare: they describe the machine or the OS, not what code may use. */
export const VOLATILE_FEATURES = new Set(['hypervisor', 'osxsave', 'ospke', 'tsc_deadline_timer', 'x2apic', 'md_clear', 'monitor', 'vmx', 'svm', 'tsc_adjust']);

/** XSAVE state components by bit (what --cpu-cap fpu compares), as the kernel names them. */
export const XFEATURE_NAMES: Record<number, string> = {
  0: 'x87', 1: 'sse', 2: 'avx (ymm)', 3: 'mpx bndregs', 4: 'mpx bndcsr', 5: 'avx-512 opmask', 6: 'avx-512 zmm_hi256', 7: 'avx-512 hi16_zmm',
  9: 'pkru', 17: 'amx tilecfg', 18: 'amx tiledata', 19: 'apx',
};

/** The name of a feature bit, or "word W bit B" for one without a name here. */
export function featureName(word: number, bit: number): string {
  return FEATURE_NAMES[word]?.[bit] ?? `word ${word} bit ${bit}`;
}
