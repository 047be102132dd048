// The command line: CRIU's command and flag names where CRIU has them. A thin layer over the
// library (src/index.ts): parse, call, print the result (text or --json), exit with its code.
// Start-up matters (`cryo --version` should cost little more than `node -e 0`, a trivial dump
// well under 100 ms): this module loads commander and the option texts only; each command's
// action imports the engine when it runs (`await import`), so --help loads none of it.
import { Command, CommanderError, Option } from 'commander';
import type { CheckResult, DumpResult, RestoreResult } from '../index.js';
import { registerCpuinfo, CPU_CAP_HELP } from './cpuinfo.js';
import { VERSION } from './version.js';
import { EXIT, EXIT_CODES_HELP, UsageError, parsePid, parseSize, collectInherit, collectExternal, collectDumpExternal, noDumpExternals, collectExtMountMap, collectCgroupRoot, addLogOptions, addJsonOption, verbosityOption, networkLockOption, FREEZE_CGROUP_HELP, freezeCgroupArg, manageCgroupsOption } from './options.js';
import { DEFAULT_CPU_CAP, DEFAULT_GHOST_LIMIT, VERIFY_MODES, type VerifyMode } from '../util/option-defaults.js';
import { DUMP_STEPS, RESTORE_STEPS } from '../util/failpoint.js';
import { SKIP_STEPS } from '../util/skip.js';

// `cryo check -t PID | head` closes our stdout early: that is not an error.
process.stdout.on('error', (e: NodeJS.ErrnoException) => {
  if (e.code === 'EPIPE') process.exit(process.exitCode ?? 0);
  throw e;
});

/** Any error the CLI itself reports: one line on stderr, and the exit code of its class. */
function fail(e: unknown): never {
  const msg = e instanceof Error ? e.message : String(e);
  process.stderr.write(`cryo: ${msg}\n`);
  if (process.env.CRYO_DEBUG && e instanceof Error) process.stderr.write(`${e.stack}\n`);
  process.exit(e instanceof UsageError ? EXIT.usage : EXIT.failed);
}

/** Prints a result (text lines, or the JSON object alone on stdout) and exits with its code. */
function finish(r: CheckResult | DumpResult | RestoreResult, json: boolean, text: string[] = []): never {
  process.stdout.write(json ? JSON.stringify(r) + '\n' : text.map((l) => l + '\n').join(''));
  const err = 'error' in r ? r.error : undefined;
  if (err !== undefined) {
    const refused = r.verdict === 'refused' && r.command !== 'check';
    process.stderr.write(`cryo: ${refused ? 'cannot checkpoint: ' : ''}${err}\n`);
  }
  if (r.verdict === 'refused') process.exit(EXIT.refused);
  if (r.verdict === 'failed') process.exit('signal' in r && r.signal ? 128 + r.signal : EXIT.failed);
  process.exit('exitCode' in r && r.exitCode !== undefined ? r.exitCode : EXIT.done);
}

/** A progress line, unless --json, or the log itself goes to the terminal (-v3 and up without -o). */
function drawProgress(o: { json?: boolean; verbosity: number; logFile?: string }): boolean {
  return !o.json && !(o.verbosity >= 3 && !o.logFile);
}

function example(...lines: string[]): string {
  return `\nExample${lines.length > 1 ? 's' : ''}:\n${lines.map((l) => `  $ ${l}`).join('\n')}\n${EXIT_CODES_HELP}`;
}

const program = new Command();
program
  .name('cryo')
  .description("Checkpoint/restore for Linux processes, in CRIU's image format.\nRun as root.")
  .version(VERSION)
  // Usage errors (commander's and ours) exit 2; help and --version 0.
  .exitOverride((e: CommanderError) => process.exit(e.exitCode === 0 ? EXIT.done : EXIT.usage))
  .configureOutput({ outputError: (s, write) => write(`cryo: ${s.replace(/^error: /, '')}`) })
  .addHelpText('after', example('cryo demo', 'cryo check -t 1234', 'cryo dump -t 1234 -D /tmp/ckpt', 'cryo restore -D /tmp/ckpt -d'));

addJsonOption(
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
      .option('-R, --leave-running', 'keep the process running after the checkpoint: it is frozen only while its state is read and a copy-on-write snapshot of its memory is made; the memory is written from the snapshot while it runs on')
      .option('--frozen-copy', 'with --leave-running: keep the process frozen until its memory is on disk, no snapshot (no copies of the pages it writes meanwhile; CRIU\'s way)')
      .option('--ext-unix-sk', 'allow unix sockets connected to a named socket outside the tree (restore connects them to that name again)')
      .option('--ghost-limit <size>', 'largest deleted-but-open file whose contents are saved (e.g. 4M)', parseSize, DEFAULT_GHOST_LIMIT)
      .option('--file-locks', 'save the flock, POSIX and OFD locks the tasks hold (restored with them)')
      .option('-j, --shell-job', 'the tree may hold the terminal it was started from (a pty from outside the tree): `restore --shell-job` attaches it to the terminal the restore runs on')
      .option('--tcp-established', 'checkpoint established TCP connections (TCP repair; the network is locked for them while frozen and, after a kill, until the restore)')
      .option('--tcp-close', 'save TCP connections (established or closing) to be restored closed: the program reads end of file on them; no repair mode, no network lock (over --tcp-established)')
      .option('--skip-in-flight', "drop the connections a TCP listener has not accepted yet instead of refusing it (CRIU's flag): it is restored with an empty accept queue, and their clients find them reset and connect again")
      .addOption(networkLockOption())
      .option('--external <mnt[MOUNTPOINT]:KEY|tty[RDEV:DEV]>', "mnt[MOUNTPOINT]:KEY: a mount of the container's namespace that comes from the host (a bind of a host directory or file), saved by KEY only: the restore binds the path given for KEY there; tty[RDEV:DEV]: the terminal of that st_rdev and st_dev (hex) is the caller's (runc's console): restore --inherit-fd fd[N]:tty[RDEV:DEV] hands one in (repeatable; CRIU's syntax)", collectDumpExternal, noDumpExternals())
      .option('--ext-mount-map <MOUNTPOINT:KEY>', 'the same as --external mnt[MOUNTPOINT]:KEY (CRIU\'s older spelling)', collectExtMountMap, new Map<string, string>())
      .option('--freeze-cgroup [dir]', FREEZE_CGROUP_HELP)
      .addOption(manageCgroupsOption('save the cgroups the tree is in with their settings (memory, cpu, pids, ... limits), for restore --manage-cgroups; ignore: only which cgroup each task is in'))
      .option('--verify-pages', 'checksum the page images too (by default the manifest records their sizes; the restore then reads every page once more to check it)')
      .option('--list-fail-steps', 'print the step names CRYO_FAIL_AT accepts, and exit'),
  ),
)
  .addHelpText('after', example('cryo dump -t 1234 -D /tmp/ckpt --leave-running -v4 -o /tmp/ckpt.log'))
  .action(async (o) => {
    if (o.listFailSteps) return finishList(DUMP_STEPS);
    if (!o.tree) throw new UsageError('dump needs -t PID (the process to checkpoint), e.g. cryo dump -t 1234 -D /tmp/ckpt');
    if (!o.imagesDir) throw new UsageError('dump needs -D DIR (where to write the images), e.g. cryo dump -t 1234 -D /tmp/ckpt');
    const [{ dump }, { progressLine }] = await Promise.all([import('../api/dump.js'), import('./progress-line.js')]);
    const progress = progressLine(process.stderr, drawProgress(o));
    const r = dump({
      pid: o.tree, dir: o.imagesDir, leaveRunning: !!o.leaveRunning, frozenCopy: !!o.frozenCopy, extUnixSk: !!o.extUnixSk, ghostLimit: o.ghostLimit,
      fileLocks: !!o.fileLocks, shellJob: !!o.shellJob, verifyPages: !!o.verifyPages, tcpEstablished: !!o.tcpEstablished, tcpClose: !!o.tcpClose, skipInFlight: !!o.skipInFlight, networkLock: o.networkLock, freezeCgroup: freezeCgroupArg(o.freezeCgroup), manageCgroups: o.manageCgroups, logLevel: o.verbosity, logFile: o.logFile,
      externalMounts: new Map([...o.extMountMap, ...o.external.mounts]), externalTtys: o.external.ttys,
      onProgress: progress.sink, interruptible: true,
    });
    progress.stop();
    finish(r, !!o.json);
  });

addJsonOption(
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
        "use cryo's own fd N for the image's file KEY, e.g. fd[3]:pipe:[12345] for a pipe whose other end was outside the dumped tree, fd[3]:tty[RDEV:DEV] for a terminal dumped with --external tty[RDEV:DEV] (a pty slave, or its master; repeatable; CRIU's syntax)",
        collectInherit,
        new Map<string, number>(),
      )
      .option(
        '--external <kind[key]:value>',
        "an external resource of the images, CRIU's syntax: veth[INSIDE]:OUTSIDE names the host end of the tree's veth INSIDE (by default the name it had at dump); mnt[KEY]:PATH is the host path bound where the dump saved an external mount of key KEY (repeatable)",
        collectExternal,
        [] as string[],
      )
      .addOption(manageCgroupsOption("the images' cgroups: made again if missing, with their saved settings; soft (default): settings only into the cgroups it makes, full: into every one (and fail when one cannot be set), ignore: every task stays in cryo's cgroups"))
      .option('--cgroup-root <[controller:]/path>', "put the tree in cgroup PATH instead of the root task's dumped cgroup, the cgroups below it moved along (CRIU's option): in the hierarchy of CONTROLLER (unified: v2), or without one in every hierarchy no other --cgroup-root names (repeatable)", collectCgroupRoot, [])
      .addOption(new Option('--verify <mode>', 'before anything runs, compare the restored state with the images: on (a difference fails the restore), warn (print differences, go on), off').choices(VERIFY_MODES).default('on'))
      .option('--cpu-cap <caps>', CPU_CAP_HELP, DEFAULT_CPU_CAP)
      .option('--tcp-established', 'restore the TCP connections of the images (needed when they hold any)')
      .option('--tcp-close', 'restore the TCP connections of the images closed (needed for images dumped with --tcp-close; over --tcp-established): the program reads end of file on them')
      .addOption(networkLockOption())
      .option('--root <dir>', "where the container's root directory is now, when it moved since the dump (default: the directory it was)")
      .option('--ext-mount-map <KEY:PATH>', 'the same as --external mnt[KEY]:PATH', collectExtMountMap, new Map<string, string>())
      .option('-j, --shell-job', 'the root process may be in a session or process group led from outside the images; it joins this one, and a terminal from outside the dumped tree (dump --shell-job) is replaced by the one cryo runs on, with the job in its foreground')
      // CRIU's restore takes these too (runc and scripts pass the dump's flags again): what the
      // images hold is restored either way.
      .option('--file-locks', "accepted as CRIU does: the images' file locks are restored with or without it")
      .option('--ext-unix-sk', 'accepted as CRIU does: unix peers outside the tree are reconnected by name with or without it')
      .option('--trust-image', 'restore images that are not owned by the restoring user or are writable by others (an image can make the restore open any file and grant any credentials)')
      .option('--list-fail-steps', 'print the step names CRYO_FAIL_AT accepts, and exit')
      .option('--list-skip-steps', 'print the step names CRYO_SKIP accepts (restore steps left out on purpose), and exit'),
  ),
)
  .addHelpText('after', example('cryo restore -D /tmp/ckpt -d --pidfile /tmp/ckpt.pid'))
  .action(async (o) => {
    if (o.listFailSteps) return finishList(RESTORE_STEPS);
    if (o.listSkipSteps) return finishList(SKIP_STEPS);
    if (!o.imagesDir) throw new UsageError('restore needs -D DIR (the images to restore), e.g. cryo restore -D /tmp/ckpt -d');
    const [{ restore }, { progressLine }] = await Promise.all([import('../api/restore.js'), import('./progress-line.js')]);
    const progress = progressLine(process.stderr, drawProgress(o));
    const r = restore({
      dir: o.imagesDir, detach: !!o.restoreDetached, pidfile: o.pidfile, inherit: o.inheritFd, trustImage: !!o.trustImage,
      shellJob: !!o.shellJob, logLevel: o.verbosity, logFile: o.logFile, verify: o.verify as VerifyMode, onProgress: progress.sink, cpuCap: o.cpuCap,
      tcpEstablished: !!o.tcpEstablished, tcpClose: !!o.tcpClose, networkLock: o.networkLock, external: o.external, root: o.root, extMounts: o.extMountMap, manageCgroups: o.manageCgroups, cgroupRoot: o.cgroupRoot,
      onDifference: (line) => process.stderr.write(`cryo: warning: restored state differs: ${line}\n`),
    });
    progress.stop();
    finish(r, !!o.json);
  });

addJsonOption(
  program
    .command('check')
    .description(
      'Without -t: check that this kernel has what cryo needs.\n' +
        'With -t PID: whether cryo can checkpoint the tree under PID: every blocker named, then ' +
        'a one-line verdict; with -v every task, fd, mapping and namespace with its own. ' +
        'The process is not stopped or touched.',
    )
    .option('-t, --tree <pid>', 'PID of the process tree to inspect', parsePid)
    .option('--ext-unix-sk', 'as for dump: unix peers outside the tree are not blockers')
    .option('--ghost-limit <size>', 'as for dump: deleted files up to SIZE are not blockers', parseSize, DEFAULT_GHOST_LIMIT)
    .option('--file-locks', 'as for dump: file locks are not blockers')
    .option('-j, --shell-job', 'as for dump: a terminal from outside the tree is not a blocker')
    .option('--tcp-established', 'as for dump: TCP connections are not blockers')
    .option('--tcp-close', 'as for dump: TCP connections are not blockers (they would be restored closed)')
    .option('--skip-in-flight', "as for dump: a TCP listener's connections not yet accepted are not blockers (they would be dropped)")
    .option('--external <mnt[MOUNTPOINT]:KEY|tty[RDEV:DEV]>', 'as for dump: that mount comes from the host, that terminal from the caller; not blockers', collectDumpExternal, noDumpExternals())
    .option('--freeze-cgroup [dir]', 'as for dump: judge the cgroup it would freeze')
    .addOption(verbosityOption('with -v (3 or more): list every task, fd, mapping and namespace, not only the blockers')),
)
  .addHelpText('after', example('cryo check', 'cryo check -t 1234 -v'))
  .action(async (o) => {
    const [{ check }, { checkText }] = await Promise.all([import('../api/check.js'), import('./print-check.js')]);
    const r = check({ pid: o.tree, extUnixSk: !!o.extUnixSk, ghostLimit: o.ghostLimit, fileLocks: !!o.fileLocks, shellJob: !!o.shellJob, tcpEstablished: !!o.tcpEstablished, tcpClose: !!o.tcpClose, skipInFlight: !!o.skipInFlight, externalMounts: o.external.mounts, externalTtys: o.external.ttys, freezeCgroup: freezeCgroupArg(o.freezeCgroup) });
    finish(r, !!o.json, checkText(r, o.verbosity >= 3));
  });

program
  .command('show')
  .description('Print an image file as JSON, the way `crit show` does.')
  .argument('<file>', 'an image file, e.g. DIR/core-1234.img')
  .addHelpText('after', example('cryo show /tmp/ckpt/pstree.img'))
  .action(async (file: string) => (await import('./show.js')).runShow(file));

program
  .command('demo')
  .description('Start a counter process, checkpoint it, kill it, restore it and show it goes on counting.')
  .addHelpText('after', example('sudo npx cryo demo'))
  .action(async () => {
    await (await import('./demo.js')).runDemo();
  });

function finishList(steps: readonly string[]): void {
  process.stdout.write(steps.join('\n') + '\n');
}

registerCpuinfo(program, (e) => fail(e));

program.parseAsync(process.argv).catch((e) => fail(e));
