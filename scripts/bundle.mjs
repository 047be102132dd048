// Bundles the compiled CLI (dist/src/cli/main.js, from tsc) into one CommonJS file,
// dist/cryo.cjs, which bin/cryo.js loads when it is at least as new as dist/. Why: start-up.
// Node 20 resolves, reads and compiles each of the ~350 ES modules a dump loads one by one, and
// has no compile cache for ES modules; one script is read once, keeps V8's compiled code between
// runs (bin/cryo.js's code cache, which only a classic script can have on Node 20), and
// esbuild's tree shaking leaves out the unused parts of @bufbuild/protobuf (the well-known types'
// descriptors, JSON). Modules that the source imports with `await import()` stay lazy: esbuild
// wraps them in an init function run on first import.
//   node scripts/bundle.mjs        (run by `npm run build` / `prepare` after tsc)
import { readFile } from 'node:fs/promises';
import { dirname, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const dist = join(root, 'dist');

/**
 * `import.meta.url` does not exist in a CommonJS bundle; the few modules that use it find a file
 * next to themselves in dist/ (a helper they spawn as its own process). Each gets its own path in
 * dist/ back, so that the helpers still run from dist/ as before.
 */
const importMetaUrl = {
  name: 'import-meta-url',
  setup(b) {
    b.onLoad({ filter: /[\\/]dist[\\/]src[\\/].*\.js$/ }, async (args) => {
      const text = await readFile(args.path, 'utf8');
      if (!text.includes('import.meta')) return undefined;
      const rel = JSON.stringify(relative(dist, args.path));
      const contents = text.replaceAll('import.meta.url', `__cryoFileUrl(${rel})`);
      // esbuild would leave any other import.meta (dirname, filename, resolve) empty in the
      // bundle, with only a warning: the bundle would then break where dist/ works.
      if (contents.includes('import.meta')) {
        return { errors: [{ text: `${rel}: import.meta other than import.meta.url; add it to scripts/bundle.mjs` }] };
      }
      return { contents, loader: 'js' };
    });
  },
};

// esbuild is a devDependency: a checkout whose node_modules predate it (a worktree sharing an
// older one) still builds, and bin/cryo.js runs dist/ (a bundle left from before is stale).
let build;
try {
  ({ build } = await import('esbuild'));
} catch {
  process.stderr.write('cryo build: esbuild is not installed (npm ci): no bundle, bin/cryo.js runs dist/ (slower start-up)\n');
  process.exit(0);
}

await build({
  entryPoints: [join(dist, 'src', 'cli', 'main.js')],
  outfile: join(dist, 'cryo.cjs'),
  bundle: true,
  platform: 'node',
  format: 'cjs',
  target: 'node20',
  // koffi loads its native module from its own package directory.
  external: ['koffi'],
  banner: {
    js: 'const __cryoFileUrl = (p) => require("node:url").pathToFileURL(require("node:path").join(__dirname, p)).href;',
  },
  plugins: [importMetaUrl],
  logLevel: 'warning',
});
