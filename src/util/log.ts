// Leveled logging with CRIU's -v0..-v4 meaning: 0 errors only ... 4 everything. Messages go to
// stderr, or to the -o file when one is given (where everything up to the level is kept). The file
// is a new one, mode 0600 (logs quote image paths and process state), made without following a
// symlink at its name (see outfile.ts).
import { writeSync, closeSync } from 'node:fs';
import { createOutputFile } from './outfile.js';

export class Log {
  private fd: number | null = null;
  private t0 = performance.now();

  constructor(public level = 2, file?: string) {
    if (file) this.fd = createOutputFile(file, 0o600, 'log file');
  }

  private out(lvl: number, tag: string, msg: string): void {
    if (lvl > this.level) return;
    const t = ((performance.now() - this.t0) / 1000).toFixed(6);
    const line = `(${t.padStart(11)}) ${tag}${msg}\n`;
    if (this.fd !== null) writeSync(this.fd, line);
    // Warnings too (the default level, CRIU's): what the user must know — a pipe that needs
    // --inherit-fd at restore, a difference --verify warn let through, what --skip-in-flight dropped.
    else process.stderr.write(line);
  }

  /** True when messages go to a file (so the CLI still prints the error line itself). */
  get toFile(): boolean {
    return this.fd !== null;
  }

  error(msg: string): void {
    this.out(1, 'Error: ', msg);
  }
  warn(msg: string): void {
    this.out(2, 'Warn: ', msg);
  }
  info(msg: string): void {
    this.out(3, '', msg);
  }
  debug(msg: string): void {
    this.out(4, '', msg);
  }

  /**
   * Runs one step of a dump or restore and logs it at level 3 with how long it took
   * ("step NAME: 12.3 ms"; at level 4 its start too), so `-v4` shows what each step did.
   */
  step<T>(name: string, fn: () => T): T {
    this.debug(`step ${name}: start`);
    const t = performance.now();
    try {
      return fn();
    } finally {
      this.info(`step ${name}: ${(performance.now() - t).toFixed(1)} ms`);
    }
  }

  close(): void {
    if (this.fd !== null) closeSync(this.fd);
    this.fd = null;
  }
}
