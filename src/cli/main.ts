// The command line: CRIU's command and flag names where CRIU has them.
import { Command, Option, InvalidArgumentError } from 'commander';
import { resolve } from 'node:path';
import { fstatSync } from 'node:fs';
import { dump } from '../dump/index.js';
import { restore } from '../restore/index.js';
import { showImage } from '../image/show.js';
import { runDemo } from './demo.js';
import { runCheck } from './check.js';
import { registerCpuinfo, CPU_CAP_HELP } from './cpuinfo.js';
import { DEFAULT_CPU_CAP } from '../resources/task/cpu.js';
import { DEFAULT_GHOST_LIMIT } from '../resources/files/scan.js';
import { Log } from '../util/log.js';
import { DUMP_STEPS, RESTORE_STEPS } from '../util/failpoint.js';
import { SKIP_STEPS } from '../util/skip.js';
import { VERIFY_MODES, type VerifyMode } from '../restore/verify.js';
import { UnsupportedError } from '../util/errors.js';
import { armInterrupts, InterruptedError, SIG } from '../sys/index.js';

const SIGNAL_NAMES: Record<number, string> = { [SIG.HUP]: 'SIGHUP', [SIG.INT]: 'SIGINT', [SIG.TERM]: 'SIGTERM' };

// `cryo check -t PID | head` closes our stdout early: that is not an error.
process.stdout.on('error', (e: NodeJS.ErrnoException) => {
  if (e.code === 'EPIPE') process.exit(process.exitCode ?? 0);
  throw e;
});

const program = new Command();
program
  .name('cryo')
  .description('Checkpoint/restore for Linux processes, in CRIU\'s image format.\nRun as root.')
  .version('0.1.0');

function addLogOptions(c: Command): Command {
  return c
    .addOption(new Option('-v, --verbosity <level>', 'log level 0 (errors) .. 4 (everything); -v4 is CRIU\'s spelling').default('2'))
    .option('-o, --log-file <file>', 'write the log to FILE (at the chosen level) instead of stderr');
}

function makeLog(o: { verbosity: string; logFile?: string }): Log {
  const level = Number(String(o.verbosity).replace(/^v/, ''));
  return new Log(Number.isFinite(level) ? level : 2, o.logFile);
}

function fail(e: unknown, log?: Log): never {
  const msg = e instanceof Error ? e.message : String(e);
  if (log?.toFile) log.error(msg);
  log?.close();
  if (e instanceof UnsupportedError) process.stderr.write(`cryo: cannot checkpoint: ${msg}\n`);
  else process.stderr.write(`cryo: ${msg}\n`);
  if (process.env.CRYO_DEBUG && e instanceof Error) process.stderr.write(`${e.stack}\n`);
  process.exit(1);
}

/** One --inherit-fd fd[N]:KEY, added to the map of the ones before: N must be open in cryo. */
function collectInherit(spec: string, map: Map<string, number>): Map<string, number> {
  const m = /^fd\[(\d+)\]:(.+)$/.exec(spec);
  if (!m) throw new InvalidArgumentError(`not fd[N]:KEY: ${spec} (example: fd[3]:pipe:[12345])`);
  const fd = Number(m[1]);
  try {
    fstatSync(fd);
  } catch {
    throw new InvalidArgumentError(`fd ${fd} is not open in cryo (give it with a redirection such as 3>&1 or 3<pipe)`);
  }
  map.set(m[2]!, fd);
  return map;
}

/** A size with an optional K/M/G suffix (powers of 1024), as --ghost-limit takes it. */
function parseSize(text: string): number {
  const m = /^(\d+)([KMG]?)B?$/i.exec(text.trim());
  if (!m) throw new InvalidArgumentError(`not a size: ${text} (examples: 1048576, 512K, 4M)`);
  return Number(m[1]) * 1024 ** ' KMG'.indexOf((m[2] || ' ').toUpperCase());
}

/** A PID as -t takes it: a positive decimal integer; anything else is named as it was given. */
function parsePid(text: string): number {
  const t = text.trim();
  const n = Number(t);
  if (!/^\d+$/.test(t) || !Number.isSafeInteger(n) || n < 1) throw new InvalidArgumentError(`not a PID: '${text}'`);
  return n;
}

addLogOptions(
  program
    .command('dump')
    .description(
      'Checkpoint a running process into an image directory.\n' +
        'The process is frozen, its state written to DIR, then killed (or left running with ' +
        '--leave-running). If anything fails the process is left running, untouched.',
    )
    .option('-t, --tree <pid>', 'PID of the process to checkpoint', parsePid)
    .option('-D, --images-dir <dir>', 'directory to write the images into (created, must be empty)')
    .option('-R, --leave-running', 'keep the process running after the checkpoint')
    .option('--ext-unix-sk', 'allow unix sockets connected to a named socket outside the tree (restore connects them to that name again)')
    .option('--ghost-limit <size>', 'largest deleted-but-open file whose contents are saved (e.g. 4M)', parseSize, DEFAULT_GHOST_LIMIT)
    .option('--file-locks', 'save the flock, POSIX and OFD locks the tasks hold (restored with them)')
    .option('--verify-pages', 'checksum the page images too (by default the manifest records their sizes; the restore then reads every page once more to check it)')
    .option('--list-fail-steps', 'print the step names CRYO_FAIL_AT accepts, and exit'),
).action((o) => {
  if (o.listFailSteps) {
    process.stdout.write(DUMP_STEPS.join('\n') + '\n');
    return;
  }
  if (!o.tree) fail(new Error('dump needs -t PID (the process to checkpoint)'));
  if (!o.imagesDir) fail(new Error('dump needs -D DIR (where to write the images)'));
  const log = makeLog(o);
  // The dump runs synchronously: these signals only set a flag it polls, and it rolls back.
  const interrupts = armInterrupts([SIG.INT, SIG.TERM, SIG.HUP]);
  try {
    const r = dump({ pid: o.tree, dir: resolve(o.imagesDir), leaveRunning: !!o.leaveRunning, extUnixSk: !!o.extUnixSk, ghostLimit: o.ghostLimit, fileLocks: !!o.fileLocks, verifyPages: !!o.verifyPages, log });
    interrupts.disarm();
    log.info(`frozen for ${r.frozenMs.toFixed(1)} ms`);
  } catch (e) {
    interrupts.disarm();
    if (e instanceof InterruptedError) {
      const name = SIGNAL_NAMES[e.signal] ?? `signal ${e.signal}`;
      log.error(`dump interrupted by ${name}; the process was put back and left running, no images written`);
      log.close();
      process.stderr.write(`cryo: dump interrupted by ${name}: the process was put back and left running, no images written\n`);
      process.exit(128 + e.signal);
    }
    fail(e, log);
  }
  log.close();
});

addLogOptions(
  program
    .command('restore')
    .description(
      'Restore a process from an image directory written by `cryo dump` (or by CRIU).\n' +
        'The process gets its original PID back, which must be free. Without -d cryo waits ' +
        'for the restored process to exit and exits with its status.',
    )
    .option('-D, --images-dir <dir>', 'directory holding the images')
    .option('-d, --restore-detached', 'return as soon as the process runs again')
    .option('--pidfile <file>', 'write the PID of the restored process to FILE')
    .option(
      '--inherit-fd <fd[N]:key>',
      "use cryo's own fd N for the image's file KEY, e.g. fd[3]:pipe:[12345] for a pipe whose other end was outside the dumped tree (repeatable; CRIU's syntax)",
      collectInherit,
      new Map<string, number>(),
    )
    .addOption(new Option('--verify <mode>', 'before anything runs, compare the restored state with the images: on (a difference fails the restore), warn (print differences, go on), off').choices(VERIFY_MODES).default('on'))
    .option('-j, --shell-job', 'the root process may be in a session or process group led from outside the images (needed for such images written by CRIU); it joins this one')
    .option('--cpu-cap <caps>', CPU_CAP_HELP, DEFAULT_CPU_CAP)
    .option('--trust-image', 'restore images that are not owned by the restoring user or are writable by others (an image can make the restore open any file and grant any credentials)')
    .option('--list-fail-steps', 'print the step names CRYO_FAIL_AT accepts, and exit')
    .option('--list-skip-steps', 'print the step names CRYO_SKIP accepts (restore steps left out on purpose), and exit'),
).action((o) => {
  if (o.listFailSteps) {
    process.stdout.write(RESTORE_STEPS.join('\n') + '\n');
    return;
  }
  if (o.listSkipSteps) {
    process.stdout.write(SKIP_STEPS.join('\n') + '\n');
    return;
  }
  if (!o.imagesDir) fail(new Error('restore needs -D DIR (the images to restore)'));
  const log = makeLog(o);
  try {
    const onDifference = (line: string) => process.stderr.write(`cryo: warning: restored state differs: ${line}\n`);
    const r = restore({ dir: resolve(o.imagesDir), detach: !!o.restoreDetached, pidfile: o.pidfile, inherit: o.inheritFd, trustImage: !!o.trustImage, shellJob: !!o.shellJob, log, verify: o.verify as VerifyMode, onDifference, cpuCap: o.cpuCap });
    log.close();
    if (r.exitCode !== undefined) process.exit(r.exitCode);
  } catch (e) {
    fail(e, log);
  }
});

program
  .command('check')
  .description(
    'Without -t: check that this kernel has what cryo needs.\n' +
      'With -t PID: list every task, fd, mapping and namespace of the tree under PID and whether ' +
      'cryo can checkpoint it, naming each blocker. Exits 0 only if a dump would be attempted.\n' +
      'The process is not stopped or touched.',
  )
  .option('-t, --tree <pid>', 'PID of the process tree to inspect', parsePid)
  .option('--ext-unix-sk', 'as for dump: unix peers outside the tree are not blockers')
  .option('--ghost-limit <size>', 'as for dump: deleted files up to SIZE are not blockers', parseSize, DEFAULT_GHOST_LIMIT)
  .option('--file-locks', 'as for dump: file locks are not blockers')
  .action((o) => {
    try {
      process.exitCode = runCheck(o.tree, { extUnixSk: !!o.extUnixSk, ghostLimit: o.ghostLimit, fileLocks: !!o.fileLocks });
    } catch (e) {
      fail(e);
    }
  });

program
  .command('show')
  .description('Print an image file as JSON, the way `crit show` does.')
  .argument('<file>', 'an image file, e.g. DIR/core-1234.img')
  .action((file: string) => {
    try {
      process.stdout.write(JSON.stringify(showImage(file), null, 2) + '\n');
    } catch (e) {
      fail(e);
    }
  });

program
  .command('demo')
  .description('Start a counter process, checkpoint it, kill it, restore it and show it goes on counting.')
  .action(async () => {
    try {
      await runDemo();
    } catch (e) {
      fail(e);
    }
  });

registerCpuinfo(program, (e) => fail(e));

// Accept CRIU's "-v4" spelling: commander would read it as -v with value "4" already.
program.parseAsync(process.argv).catch((e) => fail(e));
