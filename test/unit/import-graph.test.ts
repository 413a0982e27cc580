// The shape of the house, checked: lib/ has no import cycle (type imports included), devices
// import neither boot/, machine/ nor platform/ (their ports, windows and interrupt routing are
// options given by whoever registers them), and machine/ calls no native function (lib/kvm
// wraps every ioctl).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { dirname, join, normalize, relative } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..', '..');
const lib = join(root, 'lib');

function files(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) =>
    e.isDirectory() ? files(join(dir, e.name)) : e.name.endsWith('.ts') ? [join(dir, e.name)] : []);
}

/** file (relative to lib/) → the lib files it imports or re-exports from. */
function graph(): Map<string, string[]> {
  const g = new Map<string, string[]>();
  for (const f of files(lib)) {
    const text = readFileSync(f, 'utf8');
    const deps = [...text.matchAll(/^(?:import|export)\b[^;]*?\bfrom\s+'(\.[^']+)'/gms)]
      .map((m) => relative(lib, normalize(join(dirname(f), m[1]!.replace(/\.js$/, '.ts')))));
    g.set(relative(lib, f), deps);
  }
  return g;
}

test('lib/ has no import cycle', () => {
  const g = graph();
  const state = new Map<string, 'open' | 'done'>();
  const cycles: string[] = [];
  const visit = (f: string, path: string[]): void => {
    if (state.get(f) === 'done') return;
    if (state.get(f) === 'open') { cycles.push([...path.slice(path.indexOf(f)), f].join(' -> ')); return; }
    state.set(f, 'open');
    for (const d of g.get(f) ?? []) visit(d, [...path, f]);
    state.set(f, 'done');
  };
  for (const f of g.keys()) visit(f, []);
  assert.deepEqual(cycles, []);
});

test('devices import neither boot/, machine/ nor the platform layout', () => {
  const bad = [...graph()].filter(([f]) => f.startsWith('devices/'))
    .flatMap(([f, deps]) => deps.filter((d) => /^(boot|machine|platform)\//.test(d)).map((d) => `${f} -> ${d}`));
  assert.deepEqual(bad, []);
});

test('machine/ reaches KVM only through lib/kvm', () => {
  const bad = [...graph()].filter(([f]) => f.startsWith('machine/'))
    .flatMap(([f, deps]) => deps.filter((d) => d === 'native.ts').map((d) => `${f} -> ${d}`));
  assert.deepEqual(bad, []);
});

/** The layers of docs/architecture.md, lowest first; a layer imports only layers before it. */
const LAYERS = [['native.ts'], ['kvm', 'bus'], ['net'], ['devices'], ['platform'], ['boot'], ['machine'],
  ['images', 'lab', 'doctor.ts'], ['testing', 'cli', 'index.ts']];
/** Used by every layer. */
const SHARED = new Set(['errors.ts', 'error-codes.ts', 'size.ts', 'options-check.ts', 'snapshot-trace.ts', 'user-file.ts']);

test('each layer imports only the layers below it (KVM and buses share types)', () => {
  const layerOf = (f: string): number => LAYERS.findIndex((names) => names.includes(f.split('/')[0]!));
  const bad: string[] = [];
  for (const [f, deps] of graph()) {
    if (SHARED.has(f)) continue;
    const mine = layerOf(f);
    assert.ok(mine >= 0, `${f} belongs to no layer: add its directory to LAYERS (and to docs/architecture.md)`);
    for (const d of deps) {
      if (SHARED.has(d)) continue;
      const theirs = layerOf(d);
      if (theirs > mine) bad.push(`${f} -> ${d}`);
    }
  }
  assert.deepEqual(bad, []);
});
