// Kernel ABI constants (x86_64) shared by the layers above.

export const PAGE_SIZE = 4096;

export const PTRACE = {
  PEEKDATA: 2,
  POKEDATA: 5,
  CONT: 7,
  KILL: 8,
  SINGLESTEP: 9,
  SYSCALL: 24,
  GETREGS: 12,
  SETREGS: 13,
  DETACH: 17,
  SETOPTIONS: 0x4200,
  GETEVENTMSG: 0x4201,
  GETSIGINFO: 0x4202,
  GETREGSET: 0x4204,
  SETREGSET: 0x4205,
  SEIZE: 0x4206,
  INTERRUPT: 0x4207,
  LISTEN: 0x4208,
  PEEKSIGINFO: 0x4209,
  GETSIGMASK: 0x420a,
  SETSIGMASK: 0x420b,
  SECCOMP_GET_FILTER: 0x420c,
  SECCOMP_GET_METADATA: 0x420d,
  GET_RSEQ_CONFIGURATION: 0x420f,
} as const;

export const PTRACE_O = {
  TRACESYSGOOD: 1,
  TRACEFORK: 2,
  TRACEVFORK: 4,
  TRACECLONE: 8,
  TRACEEXEC: 0x10,
  TRACEEXIT: 0x40,
  EXITKILL: 0x100000,
  SUSPEND_SECCOMP: 0x200000,
} as const;

export const PTRACE_EVENT = { FORK: 1, VFORK: 2, CLONE: 3, EXEC: 4, EXIT: 6, STOP: 128 } as const;

export const NT = { PRSTATUS: 1, PRFPREG: 2, X86_XSTATE: 0x202 } as const;

/** fcntl(2) commands cryo uses. */
export const F = {
  SETFD: 2,
  GETFL: 3,
  SETFL: 4,
  SETSIG: 10,
  GETSIG: 11,
  SETOWN_EX: 15,
  GETOWN_EX: 16,
  DUPFD_CLOEXEC: 1030,
  SETPIPE_SZ: 1031,
  GETPIPE_SZ: 1032,
} as const;

export const WAIT = { WNOHANG: 1, WUNTRACED: 2, WALL: 0x40000000 } as const;

export const SIG = {
  HUP: 1, INT: 2, QUIT: 3, ILL: 4, TRAP: 5, ABRT: 6, BUS: 7, FPE: 8, KILL: 9, USR1: 10, SEGV: 11,
  USR2: 12, PIPE: 13, ALRM: 14, TERM: 15, STKFLT: 16, CHLD: 17, CONT: 18, STOP: 19, TSTP: 20,
  TTIN: 21, TTOU: 22,
} as const;
export const NSIG = 64;

/** lseek whence values that walk a sparse file's (or a shmem object's) data and holes. */
export const SEEK = { DATA: 3, HOLE: 4 } as const;

/** st_mode's file type bits (S_IFMT and its values). */
export const S_IF = { MT: 0o170000, SOCK: 0o140000, LNK: 0o120000, REG: 0o100000, BLK: 0o060000, DIR: 0o040000, CHR: 0o020000, IFO: 0o010000 } as const;

export const PROT = { NONE: 0, READ: 1, WRITE: 2, EXEC: 4 } as const;
export const MAP = {
  SHARED: 0x01,
  PRIVATE: 0x02,
  FIXED: 0x10,
  ANONYMOUS: 0x20,
  GROWSDOWN: 0x100,
  LOCKED: 0x2000,
  NORESERVE: 0x4000,
  FIXED_NOREPLACE: 0x100000,
} as const;

export const O = {
  RDONLY: 0,
  WRONLY: 1,
  RDWR: 2,
  ACCMODE: 3,
  CREAT: 0o100,
  EXCL: 0o200,
  NOCTTY: 0o400,
  TRUNC: 0o1000,
  APPEND: 0o2000,
  NONBLOCK: 0o4000,
  DSYNC: 0o10000,
  ASYNC: 0o20000,
  DIRECT: 0o40000,
  LARGEFILE: 0o100000,
  DIRECTORY: 0o200000,
  NOFOLLOW: 0o400000,
  NOATIME: 0o1000000,
  CLOEXEC: 0o2000000,
  PATH: 0o10000000,
} as const;

export const PR = {
  SET_PDEATHSIG: 1,
  GET_PDEATHSIG: 2,
  GET_DUMPABLE: 3,
  SET_DUMPABLE: 4,
  SET_NAME: 15,
  GET_NAME: 16,
  GET_SECUREBITS: 27,
  SET_SECUREBITS: 28,
  SET_SECCOMP: 22,
  SET_TIMERSLACK: 29,
  SET_MM: 35,
  SET_MM_MAP: 14,
  SET_CHILD_SUBREAPER: 36,
  GET_CHILD_SUBREAPER: 37,
  SET_NO_NEW_PRIVS: 38,
  GET_NO_NEW_PRIVS: 39,
  GET_TID_ADDRESS: 40,
  GET_THP_DISABLE: 42,
  SET_THP_DISABLE: 41,
  SET_MEMORY_MERGE: 67,
  /** Machine-check kill policy of the thread: PR_MCE_KILL_SET (1) early (1) or late (0). */
  MCE_KILL: 33,
  /** Memory-deny-write-execute (systemd's MemoryDenyWriteExecute=): flags REFUSE_EXEC_GAIN 1, NO_INHERIT 2. */
  SET_MDWE: 65,
  GET_MDWE: 66,
  CAPBSET_DROP: 24,
  CAP_AMBIENT: 47,
  CAP_AMBIENT_RAISE: 2,
  CAP_AMBIENT_CLEAR_ALL: 4,
  /** timer_create() takes the id it is given (Linux 6.17): for restoring POSIX timers. */
  TIMER_CREATE_RESTORE_IDS: 77,
} as const;

export const ARCH = { SET_FS: 0x1002, GET_FS: 0x1003, MAP_VDSO_64: 0x2003 } as const;

export const RSEQ_FLAG_UNREGISTER = 1;

export const CLONE = {
  VM: 0x100,
  FS: 0x200,
  FILES: 0x400,
  SIGHAND: 0x800,
  PIDFD: 0x1000,
  PARENT: 0x8000,
  THREAD: 0x10000,
  SYSVSEM: 0x40000,
  SETTLS: 0x80000,
  PARENT_SETTID: 0x100000,
  CHILD_CLEARTID: 0x200000,
  NEWNS: 0x20000,
  NEWUTS: 0x4000000,
  NEWIPC: 0x8000000,
  NEWPID: 0x20000000,
  NEWTIME: 0x80,
  NEWCGROUP: 0x2000000,
  NEWUSER: 0x10000000,
  NEWNET: 0x40000000,
} as const;

export const RLIMIT_NLIMITS = 16;

/** Kernel-internal restart codes seen in rax of a task stopped inside a syscall. */
export const ERESTART = {
  SYS: 512,
  NOINTR: 513,
  NOHAND: 514,
  RESTARTBLOCK: 516,
} as const;
export const EINTR = 4;
