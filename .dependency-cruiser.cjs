// The layer rules of docs/architecture.md, checked by `npm run lint:layers` (part of `npm test`).
// Each folder of src/ may import only from the folders below it; no import cycles; koffi only in
// src/sys/. Type-only imports count too: a layer that names a higher layer's types depends on it.
const below = {
  util: [],
  sys: ['util'],
  proc: ['util'],
  ptrace: ['sys', 'proc', 'util'],
  image: ['sys', 'util'],
  resources: ['image', 'ptrace', 'proc', 'sys', 'util'],
  check: ['dump', 'resources', 'image', 'ptrace', 'proc', 'sys', 'util'],
  dump: ['resources', 'image', 'ptrace', 'proc', 'sys', 'util'],
  restore: ['resources', 'image', 'ptrace', 'proc', 'sys', 'util'],
  api: ['check', 'dump', 'restore', 'resources', 'image', 'ptrace', 'proc', 'sys', 'util'],
  cli: ['index', 'api', 'check', 'dump', 'restore', 'resources', 'image', 'ptrace', 'proc', 'sys', 'util'],
  index: ['api', 'check', 'util'],
};

/** The path pattern of a layer: a folder of src/, or the library entry src/index.ts. */
const at = (layer) => (layer === 'index' ? '^src/index\\.ts$' : `^src/${layer}/`);

module.exports = {
  forbidden: [
    { name: 'no-cycles', severity: 'error', comment: 'an import cycle', from: {}, to: { circular: true } },
    {
      name: 'koffi-only-in-sys',
      severity: 'error',
      comment: 'only src/sys/ talks to the kernel through koffi',
      from: { pathNot: '^src/sys/' },
      to: { path: 'node_modules/koffi' },
    },
    ...Object.entries(below).map(([layer, allowed]) => ({
      name: `layer-${layer}`,
      severity: 'error',
      comment: `${at(layer)} may import only from ${allowed.length ? allowed.map(at).join(', ') : 'itself'}`,
      from: { path: at(layer) },
      to: { path: '^src/', pathNot: [at(layer), ...allowed.map(at)] },
    })),
    {
      name: 'src-not-tests',
      severity: 'error',
      comment: 'the engine never imports tests or benchmarks',
      from: { path: '^src/' },
      to: { path: '^(test|bench)/' },
    },
  ],
  options: {
    doNotFollow: { path: 'node_modules' },
    tsPreCompilationDeps: true,
    tsConfig: { fileName: 'tsconfig.json' },
    exclude: { path: '^src/image/gen/' },
  },
};
