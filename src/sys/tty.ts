// Terminal ioctls (x86_64 numbers, asm-generic/ioctls.h; checked against this machine's headers)
// and the struct layouts they take: struct termios2 (TCGETS2/TCSETS2, with the speeds), the
// kernel's struct termios (TIOCGLCKTRMIOS/TIOCSLCKTRMIOS) and struct winsize.
import { sys, sysTry } from './libc.js';

export const TIOC = {
  TCGETS: 0x5401,
  TCSETS: 0x5402,
  /** _IOR('T', 0x2A, struct termios2) */
  TCGETS2: 0x802c542a,
  /** _IOW('T', 0x2B, struct termios2): applied at once, nothing drained or flushed */
  TCSETS2: 0x402c542b,
  TIOCEXCL: 0x540c,
  TIOCNXCL: 0x540d,
  TIOCSCTTY: 0x540e,
  TIOCGPGRP: 0x540f,
  TIOCSPGRP: 0x5410,
  /** bytes written but not yet sent by the driver (ptys have no driver buffer: 0) */
  TIOCOUTQ: 0x5411,
  /** push one byte into the terminal's input (CAP_SYS_ADMIN unless it is the caller's ctty) */
  TIOCSTI: 0x5412,
  TIOCGWINSZ: 0x5413,
  TIOCSWINSZ: 0x5414,
  /** = TIOCINQ: bytes the line discipline would hand to read() now */
  FIONREAD: 0x541b,
  TIOCPKT: 0x5420,
  TIOCNOTTY: 0x5422,
  TIOCGSID: 0x5429,
  TIOCGPTN: 0x80045430,
  TIOCSPTLCK: 0x40045431,
  TIOCGPKT: 0x80045438,
  TIOCGPTLCK: 0x80045439,
  TIOCGEXCL: 0x80045440,
  /** _IO('T', 0x41): opens the slave of a master; arg = open flags */
  TIOCGPTPEER: 0x5441,
  TIOCGLCKTRMIOS: 0x5456,
  TIOCSLCKTRMIOS: 0x5457,
} as const;

/** NCCS of the kernel's termios and termios2 (x86_64). */
export const KERNEL_NCCS = 19;

export interface Termios {
  iflag: number;
  oflag: number;
  cflag: number;
  lflag: number;
  line: number;
  /** KERNEL_NCCS control characters */
  cc: number[];
  ispeed: number;
  ospeed: number;
}

export interface Winsize {
  row: number;
  col: number;
  xpixel: number;
  ypixel: number;
}

// struct termios2: 4 tcflag_t, c_line at 16, c_cc[19] at 17, c_ispeed at 36, c_ospeed at 40 (44
// bytes). The kernel's struct termios is its first 36 bytes.
const TERMIOS2_SIZE = 44;
const TERMIOS_SIZE = 36;

function decodeTermios(b: Buffer, withSpeeds: boolean): Termios {
  const cc: number[] = [];
  for (let i = 0; i < KERNEL_NCCS; i++) cc.push(b[17 + i]!);
  return {
    iflag: b.readUInt32LE(0), oflag: b.readUInt32LE(4), cflag: b.readUInt32LE(8), lflag: b.readUInt32LE(12),
    line: b[16]!, cc, ispeed: withSpeeds ? b.readUInt32LE(36) : 0, ospeed: withSpeeds ? b.readUInt32LE(40) : 0,
  };
}

function encodeTermios(t: Termios, size: number): Buffer {
  const b = Buffer.alloc(size);
  b.writeUInt32LE(t.iflag >>> 0, 0);
  b.writeUInt32LE(t.oflag >>> 0, 4);
  b.writeUInt32LE(t.cflag >>> 0, 8);
  b.writeUInt32LE(t.lflag >>> 0, 12);
  b[16] = t.line & 0xff;
  for (let i = 0; i < KERNEL_NCCS; i++) b[17 + i] = (t.cc[i] ?? 0) & 0xff;
  if (size >= TERMIOS2_SIZE) {
    b.writeUInt32LE(t.ispeed >>> 0, 36);
    b.writeUInt32LE(t.ospeed >>> 0, 40);
  }
  return b;
}

function ioctlPtr(fd: number, req: number, buf: Buffer, what: string): void {
  sys('ioctl', [fd, req, buf], what);
}

/** An ioctl that writes one int through its pointer argument. */
export function ioctlGetInt(fd: number, req: number, what: string): number {
  const b = Buffer.alloc(4);
  ioctlPtr(fd, req, b, what);
  return b.readInt32LE(0);
}

/** Like ioctlGetInt, but null on failure (ENOTTY: no session, not our ctty, not a master). */
export function ioctlGetIntTry(fd: number, req: number): { value: number | null; errno: number } {
  const b = Buffer.alloc(4);
  const r = sysTry('ioctl', [fd, req, b]);
  return r.ret < 0 ? { value: null, errno: r.errno } : { value: b.readInt32LE(0), errno: 0 };
}

/** An ioctl that reads one int through its pointer argument. */
export function ioctlSetInt(fd: number, req: number, value: number, what: string): void {
  const b = Buffer.alloc(4);
  b.writeInt32LE(value, 0);
  ioctlPtr(fd, req, b, what);
}

/** An ioctl whose argument is a plain value (TIOCSCTTY's force flag, TIOCGPTPEER's flags). */
export function ioctlValue(fd: number, req: number, value: number, what: string): number {
  return sys('ioctl', [fd, req, value], what);
}

export function tcgets2(fd: number, what = `fd ${fd}`): Termios {
  const b = Buffer.alloc(TERMIOS2_SIZE);
  ioctlPtr(fd, TIOC.TCGETS2, b, `TCGETS2 ${what}`);
  return decodeTermios(b, true);
}

export function tcsets2(fd: number, t: Termios, what = `fd ${fd}`): void {
  ioctlPtr(fd, TIOC.TCSETS2, encodeTermios(t, TERMIOS2_SIZE), `TCSETS2 ${what}`);
}

/** The locked termios bits (a set bit cannot be changed by TCSETS*; setting needs CAP_SYS_ADMIN). */
export function getLockedTermios(fd: number, what = `fd ${fd}`): Termios {
  const b = Buffer.alloc(TERMIOS_SIZE);
  ioctlPtr(fd, TIOC.TIOCGLCKTRMIOS, b, `TIOCGLCKTRMIOS ${what}`);
  return decodeTermios(b, false);
}

export function setLockedTermios(fd: number, t: Termios, what = `fd ${fd}`): void {
  ioctlPtr(fd, TIOC.TIOCSLCKTRMIOS, encodeTermios(t, TERMIOS_SIZE), `TIOCSLCKTRMIOS ${what}`);
}

export function getWinsize(fd: number, what = `fd ${fd}`): Winsize {
  const b = Buffer.alloc(8);
  ioctlPtr(fd, TIOC.TIOCGWINSZ, b, `TIOCGWINSZ ${what}`);
  return { row: b.readUInt16LE(0), col: b.readUInt16LE(2), xpixel: b.readUInt16LE(4), ypixel: b.readUInt16LE(6) };
}

export function setWinsize(fd: number, w: Winsize, what = `fd ${fd}`): void {
  const b = Buffer.alloc(8);
  b.writeUInt16LE(w.row & 0xffff, 0);
  b.writeUInt16LE(w.col & 0xffff, 2);
  b.writeUInt16LE(w.xpixel & 0xffff, 4);
  b.writeUInt16LE(w.ypixel & 0xffff, 6);
  ioctlPtr(fd, TIOC.TIOCSWINSZ, b, `TIOCSWINSZ ${what}`);
}

/** A pty master's index (the N of /dev/pts/N). */
export function ptyIndex(master: number): number {
  return ioctlGetInt(master, TIOC.TIOCGPTN, `TIOCGPTN fd ${master}`);
}

const O_CLOEXEC = 0o2000000;
const F_SETFD = 2;

/**
 * Opens the slave of `master` (works even if /dev/pts is not this devpts instance). O_CLOEXEC
 * becomes FD_CLOEXEC of our fd: TIOCGPTPEER would keep it in the file's own flags, which every
 * fd on it (pidfd_getfd's copy in a task) would then show in fdinfo.
 */
export function openPtyPeer(master: number, flags: number): number {
  const fd = ioctlValue(master, TIOC.TIOCGPTPEER, flags & ~O_CLOEXEC, `TIOCGPTPEER fd ${master}`);
  if (flags & O_CLOEXEC) sys('fcntl', [fd, F_SETFD, 1], `FD_CLOEXEC of the slave of fd ${master}`);
  return fd;
}
