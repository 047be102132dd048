// The layer rules (.dependency-cruiser.cjs, run by `npm test` before the suite) really fail on a
// violation: a throwaway tree with an upward import, a cycle and koffi outside sys/ is refused,
// each by its rule, and the same tree without them passes.
import { describe, it, after } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { spawnSync } from 'node:child_process';
import { REPO_ROOT } from './lib/build.js';

const dirs: string[] = [];
after(() => dirs.forEach((d) => fs.rmSync(d, { recursive: true, force: true })));

function cruise(files: Record<string, string>): { code: number | null; out: string } {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'cryo-t-layers-'));
  dirs.push(dir);
  fs.copyFileSync(path.join(REPO_ROOT, '.dependency-cruiser.cjs'), path.join(dir, '.dependency-cruiser.cjs'));
  fs.writeFileSync(path.join(dir, 'tsconfig.json'), JSON.stringify({ compilerOptions: { module: 'NodeNext', moduleResolution: 'NodeNext', strict: true } }));
  fs.symlinkSync(path.join(REPO_ROOT, 'node_modules'), path.join(dir, 'node_modules'));
  for (const [f, text] of Object.entries(files)) {
    fs.mkdirSync(path.dirname(path.join(dir, f)), { recursive: true });
    fs.writeFileSync(path.join(dir, f), text);
  }
  const bin = path.join(REPO_ROOT, 'node_modules', '.bin', 'depcruise');
  const r = spawnSync(bin, ['--config', '.dependency-cruiser.cjs', 'src'], { cwd: dir, encoding: 'utf8', timeout: 120_000 });
  return { code: r.status, out: r.stdout + r.stderr };
}

describe('layer rules', () => {
  it('a tree that keeps the layers passes', () => {
    const r = cruise({
      'src/sys/libc.ts': "import koffi from 'koffi';\nexport const k = koffi;\n",
      'src/proc/stat.ts': 'export const parse = (s: string) => s.length;\n',
      'src/cli/main.ts': "import { k } from '../sys/libc.js';\nimport { parse } from '../proc/stat.js';\nexport const x = [k, parse];\n",
    });
    assert.equal(r.code, 0, r.out);
  });

  it('an upward import, a cycle and koffi outside sys/ are each refused by name', () => {
    const r = cruise({
      'src/sys/libc.ts': "import { main } from '../cli/main.js';\nexport const k = main;\n",
      'src/cli/main.ts': 'export const main = 1;\n',
      'src/resources/a.ts': "import { b } from './b.js';\nexport const a = () => b;\n",
      'src/resources/b.ts': "import { a } from './a.js';\nexport const b = () => a;\n",
      'src/proc/ffi.ts': "import koffi from 'koffi';\nexport const f = koffi;\n",
    });
    assert.notEqual(r.code, 0, r.out);
    assert.match(r.out, /layer-sys: src\/sys\/libc\.ts → src\/cli\/main\.ts/);
    assert.match(r.out, /no-cycles: src\/resources\/(a|b)\.ts/);
    assert.match(r.out, /koffi-only-in-sys: src\/proc\/ffi\.ts/);
  });
});
