// `cryo cpuinfo dump -D DIR` and `cryo cpuinfo check -D DIR [--cpu-cap CAPS]`, as CRIU has them:
// record this machine's CPU in DIR/cpuinfo.img, or check that this CPU can run images whose
// cpuinfo.img is in DIR (what is compared: resources/task/cpu.ts).
import { mkdirSync, writeFileSync, renameSync, readFileSync, existsSync } from 'node:fs';
import { join, resolve } from 'node:path';
import type { Command } from 'commander';
import { UserError } from '../util/errors.js';
import { DEFAULT_CPU_CAP, CPU_CAPS } from '../util/option-defaults.js';

// The image code and the CPU probes load when a cpuinfo command runs, not for every `cryo` start.
const engine = async () => {
  const [io, gen, cpu] = await Promise.all([import('../image/io.js'), import('../image/gen/cpuinfo_pb.js'), import('../resources/task/cpu.js')]);
  return { ...io, ...gen, ...cpu };
};

export const CPU_CAP_HELP = `what of the images' CPU (cpuinfo.img) this one must have: ${CPU_CAPS.join(', ')}, comma-separated (default ${DEFAULT_CPU_CAP})`;

export function registerCpuinfo(program: Command, fail: (e: unknown) => never): void {
  const cmd = program.command('cpuinfo').description("Record this machine's CPU (dump), or check this CPU against a recorded one (check).");
  cmd
    .command('dump')
    .description('write this CPU\'s features into DIR/cpuinfo.img (CRIU\'s format)')
    .option('-D, --images-dir <dir>', 'directory to write cpuinfo.img into (created if missing)')
    .action(async (o) => {
      try {
        if (!o.imagesDir) throw new UserError('cpuinfo dump needs -D DIR');
        const { encodeImage, cpuinfoImage } = await engine();
        const dir = resolve(o.imagesDir);
        mkdirSync(dir, { recursive: true, mode: 0o700 });
        const tmp = join(dir, `.cpuinfo.img.${process.pid}`);
        writeFileSync(tmp, encodeImage('CPUINFO', [cpuinfoImage()]), { mode: 0o600, flag: 'wx' });
        renameSync(tmp, join(dir, 'cpuinfo.img'));
      } catch (e) {
        fail(e);
      }
    });
  cmd
    .command('check')
    .description('check that this CPU has what DIR/cpuinfo.img records (exit 0), or name what it lacks (exit 1)')
    .option('-D, --images-dir <dir>', 'directory holding cpuinfo.img')
    .option('--cpu-cap <caps>', CPU_CAP_HELP, DEFAULT_CPU_CAP)
    .action(async (o) => {
      try {
        if (!o.imagesDir) throw new UserError('cpuinfo check needs -D DIR');
        const { decodeImageAs, cpuinfo_entrySchema, checkCpu, parseCpuCap } = await engine();
        const file = join(resolve(o.imagesDir), 'cpuinfo.img');
        if (!existsSync(file)) throw new UserError(`${file}: no such file`);
        const [entry] = decodeImageAs(readFileSync(file), cpuinfo_entrySchema, 'cpuinfo.img');
        if (!entry) throw new UserError(`${file}: empty`);
        checkCpu(entry, parseCpuCap(o.cpuCap));
        process.stdout.write(`this CPU can run the images (--cpu-cap ${o.cpuCap})\n`);
      } catch (e) {
        fail(e);
      }
    });
}
