// A tmpfs's contents as a gzipped tar stream (CRIU's tmpfs-dev-N.tar.gz.img), made and unpacked
// by GNU tar through /proc/PID/root of a task in the namespace: modes, owners (numeric), times,
// device nodes, symlinks, hard links and xattrs. --one-file-system stops at the mounts on top
// of it (what they cover is not visible, so not saved).
import { spawnSync } from 'node:child_process';
import { UserError } from '../../util/errors.js';

const TAR = 'tar';

export function packTmpfs(dir: string, what: string): Buffer {
  const r = spawnSync(TAR, ['-C', dir, '--one-file-system', '--xattrs', '--numeric-owner', '-czf', '-', '.'], { maxBuffer: 2 ** 32, timeout: 300_000 });
  if (r.error) throw new UserError(`${what}: tar: ${r.error.message}`);
  if (r.status !== 0) throw new UserError(`${what}: tar failed: ${r.stderr.toString().trim() || `exit ${r.status ?? r.signal}`}`);
  return r.stdout;
}

export function unpackTmpfs(dir: string, tar: Buffer, what: string): void {
  const r = spawnSync(TAR, ['-C', dir, '--xattrs', '--xattrs-include=*', '--numeric-owner', '-xzpf', '-'], { input: tar, maxBuffer: 1 << 24, timeout: 300_000 });
  if (r.error) throw new UserError(`${what}: tar: ${r.error.message}`);
  if (r.status !== 0) throw new UserError(`${what}: tar failed: ${r.stderr.toString().trim() || `exit ${r.status ?? r.signal}`}`);
}
