// The package a user meets: `npm pack`, install the tarball into an empty project (the addon
// builds there with node-gyp), then hold it to the README: every entry point it documents
// imports, every name it imports or puts in backquotes is exported (values at run time, types
// through tsc and the exports map's "types"), every ```js runnable block runs as written
// (```js runnable kvm ones need /dev/kvm), and a path the exports map does not offer fails with
// Node's ERR_PACKAGE_PATH_NOT_EXPORTED. The package's dist/ is compiled afresh from lib/.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync, type SpawnSyncReturns } from 'node:child_process';
import { cpSync, existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { requireKvm } from '../helpers/kvm.js';
import { readme, readmeApiNames, readmeBlocks, readmeEntryPoints, readmeImports, repoRoot } from '../helpers/readme.js';

let work = '';
let project = '';
let packed: string[] = [];

function run(cmd: string, args: string[], cwd: string, timeoutMs: number): SpawnSyncReturns<string> {
  const r = spawnSync(cmd, args, { cwd, encoding: 'utf8', timeout: timeoutMs, env: { ...process.env, npm_config_update_notifier: 'false' } });
  if (r.error) throw r.error;
  return r;
}

function node(file: string, timeoutMs = 60_000): SpawnSyncReturns<string> {
  return run(process.execPath, [file], project, timeoutMs);
}

before(() => {
  work = mkdtempSync(join(tmpdir(), 'nkvm-package-'));
  // Pack from a staging copy whose dist/ is compiled fresh from lib/: a dist/ left over from
  // older sources (a renamed file) must not decide what the test sees.
  const stage = join(work, 'stage');
  mkdirSync(stage);
  for (const f of ['package.json', 'README.md', 'binding.gyp', 'CMakeLists.txt', 'bin', 'native', 'docs']) {
    if (existsSync(join(repoRoot, f))) cpSync(join(repoRoot, f), join(stage, f), { recursive: true, filter: (src) => !src.includes(`${join('docs', 'api')}`) });
  }
  writeFileSync(join(stage, 'tsconfig.json'), JSON.stringify({
    extends: join(repoRoot, 'tsconfig.json'),
    compilerOptions: { rootDir: repoRoot, outDir: join(stage, 'dist'), typeRoots: [join(repoRoot, 'node_modules', '@types')] },
    include: [join(repoRoot, 'lib', '**', '*.ts')],
  }));
  const tsc = run(process.execPath, [join(repoRoot, 'node_modules', 'typescript', 'bin', 'tsc'), '-p', join(stage, 'tsconfig.json')], stage, 300_000);
  assert.equal(tsc.status, 0, `${tsc.stdout}${tsc.stderr}`);
  // --ignore-scripts: dist/ was just built; the tarball is what a user's `npm install` gets.
  const pack = run('npm', ['pack', '--ignore-scripts', '--json', '--pack-destination', work], stage, 120_000);
  assert.equal(pack.status, 0, pack.stderr);
  const info = JSON.parse(pack.stdout) as Array<{ filename: string; files: Array<{ path: string }> }>;
  packed = info[0]!.files.map((f) => f.path);
  project = join(work, 'project');
  mkdirSync(project);
  writeFileSync(join(project, 'package.json'), JSON.stringify({ name: 'uses-node-kvm', version: '1.0.0', private: true, type: 'module' }));
  // The addon builds here (node-gyp), as on a user's machine. --prefer-offline: node-addon-api
  // comes from npm's cache when it is there, from the registry otherwise.
  const install = run('npm', ['install', '--no-audit', '--no-fund', '--prefer-offline', join(work, info[0]!.filename)], project, 600_000);
  assert.equal(install.status, 0, `npm install of the tarball failed:\n${install.stdout}\n${install.stderr}`);
});

after(() => {
  if (work) rmSync(work, { recursive: true, force: true });
});

test('the tarball holds the built library, the native sources and no stale output', () => {
  assert.ok(packed.includes('dist/lib/index.js') && packed.includes('dist/lib/index.d.ts'));
  assert.ok(packed.includes('binding.gyp') && packed.some((p) => p.startsWith('native/')));
  assert.ok(!packed.some((p) => p.startsWith('dist/test/') || p.startsWith('dist/bench/') || p.startsWith('lib/')));
  // Every compiled module has its source.
  const stale = packed.filter((p) => p.startsWith('dist/lib/') && p.endsWith('.js'))
    .filter((p) => !existsSync(join(repoRoot, p.replace(/^dist\//, '').replace(/\.js$/, '.ts'))));
  assert.deepEqual(stale, [], 'the package holds output without a source');
  assert.ok(existsSync(join(project, 'node_modules', 'node-kvm', 'build', 'Release', 'node_kvm.node')), 'the install built the addon');
});

test('every entry point the README documents imports, and loads the addon', () => {
  const entries = readmeEntryPoints();
  assert.deepEqual(entries, ['node-kvm', 'node-kvm/images', 'node-kvm/lab', 'node-kvm/net', 'node-kvm/testing']);
  const file = join(project, 'entries.mjs');
  writeFileSync(file, `${entries.map((e, i) => `import * as m${i} from '${e}';`).join('\n')}
const { constants } = m0;
if (typeof constants.KVM_EXIT_IO !== 'number') throw new Error('the addon did not load');
console.log(JSON.stringify([${entries.map((_e, i) => `Object.keys(m${i}).length`).join(', ')}]));
`);
  const r = node(file);
  assert.equal(r.status, 0, r.stderr);
  for (const n of JSON.parse(r.stdout) as number[]) assert.ok(n > 0);
});

test('every name the README imports or documents is exported', () => {
  const imports = readmeImports();
  assert.ok(imports.size > 0);
  const lines: string[] = [];
  let i = 0;
  for (const [entry, names] of imports) lines.push(`import { ${[...names].join(', ')} } from '${entry}';`, `void [${[...names].join(', ')}];`);
  // Names in the prose: each is a value of some entry point or a type of the root.
  const values = join(project, 'names.mjs');
  const prose = readmeApiNames();
  writeFileSync(values, `const mods = await Promise.all(${JSON.stringify(readmeEntryPoints())}.map((e) => import(e)));
console.log(JSON.stringify(${JSON.stringify(prose)}.filter((n) => !mods.some((m) => n in m))));
`);
  const r = node(values);
  assert.equal(r.status, 0, r.stderr);
  const typeOnly = JSON.parse(r.stdout) as string[];
  // The imports run, and the type-only names resolve through the exports map's "types".
  const check = join(project, 'names-check.ts');
  writeFileSync(check, [...lines, ...typeOnly.map((n) => `import type { ${n} as T${i++} } from 'node-kvm';`), ''].join('\n'));
  writeFileSync(join(project, 'tsconfig.json'), JSON.stringify({
    compilerOptions: { module: 'nodenext', moduleResolution: 'nodenext', target: 'es2022', strict: true, noEmit: true, skipLibCheck: true, types: ['node'], typeRoots: [join(repoRoot, 'node_modules', '@types')] },
    files: ['names-check.ts'],
  }));
  const tsc = run(process.execPath, [join(repoRoot, 'node_modules', 'typescript', 'bin', 'tsc'), '-p', 'tsconfig.json'], project, 120_000);
  assert.equal(tsc.status, 0, `${tsc.stdout}${tsc.stderr}`);
  const runImports = join(project, 'imports.mjs');
  writeFileSync(runImports, lines.join('\n') + '\n');
  const ri = node(runImports);
  assert.equal(ri.status, 0, ri.stderr);
});

test('a path the exports map does not offer fails with ERR_PACKAGE_PATH_NOT_EXPORTED', () => {
  const file = join(project, 'deep.mjs');
  writeFileSync(file, `const codes = [];
for (const p of ['node-kvm/dist/lib/kvm/vm.js', 'node-kvm/lib/index.ts', 'node-kvm/machine', 'node-kvm/native']) {
  try { await import(p); codes.push('imported ' + p); } catch (e) { codes.push(e.code); }
}
console.log(JSON.stringify(codes));
`);
  const r = node(file);
  assert.equal(r.status, 0, r.stderr);
  assert.deepEqual(JSON.parse(r.stdout), Array(4).fill('ERR_PACKAGE_PATH_NOT_EXPORTED'));
});

test('the bin runs', () => {
  const r = run(join(project, 'node_modules', '.bin', 'node-kvm'), ['--help'], project, 60_000);
  assert.equal(r.status, 0, r.stderr);
  assert.match(r.stdout, /usage: node-kvm <command>/);
});

const blocks = readmeBlocks(readme()).filter((b) => b.runnable);

test('the README has runnable blocks', () => {
  assert.ok(blocks.length >= 2);
  assert.ok(blocks.some((b) => b.needsKvm));
});

for (const b of blocks) {
  test(`README block at line ${b.line} runs${b.needsKvm ? ' (KVM)' : ''}`, (t) => {
    if (b.needsKvm && !requireKvm(t)) return;
    const file = join(project, `readme-${b.line}.mjs`);
    writeFileSync(file, b.code);
    const r = node(file);
    assert.equal(r.status, 0, `README block at line ${b.line} failed:\n${r.stdout}\n${r.stderr}`);
    assert.equal(r.stderr, '');
  });
}
