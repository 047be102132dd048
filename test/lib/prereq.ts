// What the test suite needs besides cryo itself, and one line saying what to install when some of
// it is missing: `npm test` runs this first (node dist/test/lib/prereq.js), so a machine without
// crit or redis-server gets that line and a failed run, not a thousand ENOENTs and eighty failures.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { CRIT } from './cryo.js';

export interface Prerequisite {
  /** The program the tests run. */
  program: string;
  /** The Debian package that has it. */
  pkg: string;
  why: string;
  /** An exact path the tests use, or a name looked up in PATH. */
  find: string;
}

export const PREREQUISITES: Prerequisite[] = [
  { program: 'crit', pkg: 'criu', why: 'the decoder every image is checked against', find: CRIT },
  { program: 'cc', pkg: 'gcc', why: 'the test targets are C', find: 'cc' },
  { program: 'python3', pkg: 'python3', why: 'python targets and the pty helper', find: '/usr/bin/python3' },
  { program: 'redis-server', pkg: 'redis-server', why: 'a real service checkpointed and restored', find: 'redis-server' },
  { program: 'redis-cli', pkg: 'redis-server', why: 'talking to it', find: 'redis-cli' },
  { program: 'tmux', pkg: 'tmux', why: 'a real program holding ptys', find: 'tmux' },
  { program: 'nft', pkg: 'nftables', why: 'the network lock of TCP dumps', find: 'nft' },
  { program: 'ip', pkg: 'iproute2', why: 'a netlink notification the netlink test waits for', find: 'ip' },
  { program: 'unshare', pkg: 'util-linux', why: 'the namespace tests start their trees with it', find: '/usr/bin/unshare' },
  { program: 'nsenter', pkg: 'util-linux', why: 'the namespace tests look inside with it', find: 'nsenter' },
  { program: 'busybox', pkg: 'busybox-static', why: 'the container tests build their rootfs from it', find: '/bin/busybox' },
  { program: 'postgres', pkg: 'postgresql', why: 'a real multi-process server checkpointed and restored', find: '/usr/lib/postgresql/*/bin/postgres' },
  { program: 'psql', pkg: 'postgresql-client', why: 'talking to it', find: 'psql' },
  { program: 'nginx', pkg: 'nginx-light', why: 'a real master/worker server checkpointed and restored', find: '/usr/sbin/nginx' },
  { program: 'memcached', pkg: 'memcached', why: 'a real threaded server checkpointed and restored', find: '/usr/bin/memcached' },
  { program: 'javac', pkg: 'default-jdk-headless', why: 'a JVM checkpointed and restored', find: 'javac' },
  { program: 'setpriv', pkg: 'util-linux', why: 'starting PostgreSQL as its own user', find: 'setpriv' },
];

function executable(file: string): boolean {
  try {
    fs.accessSync(file, fs.constants.X_OK);
    return fs.statSync(file).isFile();
  } catch {
    return false;
  }
}

function found(find: string): boolean {
  // One `*` segment (a versioned directory such as /usr/lib/postgresql/15): any entry there.
  const star = find.split('/').indexOf('*');
  if (star > 0) {
    const parts = find.split('/');
    const dir = parts.slice(0, star).join('/');
    let entries: string[] = [];
    try {
      entries = fs.readdirSync(dir);
    } catch {
      return false;
    }
    return entries.some((e) => found([dir, e, ...parts.slice(star + 1)].join('/')));
  }
  if (find.includes('/')) return executable(find);
  return (process.env.PATH ?? '').split(':').some((dir) => dir && executable(path.join(dir, find)));
}

export function missingPrerequisites(): Prerequisite[] {
  return PREREQUISITES.filter((p) => !found(p.find));
}

/** One line: what is missing and how to get it; null when nothing is. */
export function missingLine(missing = missingPrerequisites()): string | null {
  if (!missing.length) return null;
  const pkgs = [...new Set(missing.map((m) => m.pkg))];
  const what = missing.map((m) => `${m.program} (${m.why})`).join(', ');
  return `cryo tests: missing ${what}: run \`npm run setup\` as root, or apt-get install ${pkgs.join(' ')}`;
}

// Run directly (`npm test` does before the suite): say it in one line and fail the run.
if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const line = missingLine();
  if (line) {
    process.stderr.write(line + '\n');
    process.exit(1);
  }
}
