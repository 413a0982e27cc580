// Runs every example (compiled to dist/examples) as its user would: scripts with node, *.test.js
// files with node --test (the vitest example: examples-vitest.test.ts). Needs a KVM that boots
// Linux (the linux tier runs in the lab here).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { readdirSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { requireKvm } from '../helpers/kvm.js';

const dir = join(dirname(fileURLToPath(import.meta.url)), '..', '..', 'examples');
const examples = readdirSync(dir).filter((f) => f.endsWith('.js')).sort();

/**
 * parallel.test.js boots its VMs at once. In the nested lab they all share one emulated CPU:
 * eight took 120-210 s of a CI run there, and since the default image loads the virtio and 9p
 * modules and starts the agent, four once took over 600 s beside another lab boot. Two show the
 * same (several machines on one main thread: boot, exec, close, no leaked fd).
 */
const LAB_PARALLEL_VMS = '2';

function run(file: string): Promise<{ code: number | null; out: string }> {
  const args = file.endsWith('.test.js') ? ['--test', '--test-reporter=spec', join(dir, file)] : [join(dir, file)];
  return new Promise((resolve) => {
    // Without NODE_TEST_CONTEXT: inherited from this runner, it makes a nested `node --test`
    // skip its files ("run() is being called recursively") and pass without running anything.
    const env = { ...process.env };
    delete env.NODE_TEST_CONTEXT;
    if (process.env.NODE_KVM_LAB === '1' && env.VMS === undefined) env.VMS = LAB_PARALLEL_VMS;
    const child = spawn(process.execPath, args, { stdio: ['ignore', 'pipe', 'pipe'], env });
    let out = '';
    child.stdout.on('data', (d) => { out += d; });
    child.stderr.on('data', (d) => { out += d; });
    child.on('close', (code) => resolve({ code, out }));
  });
}

for (const file of examples) {
  test(`example ${file}`, { timeout: 1_200_000 }, async (t) => {
    if (!requireKvm(t)) return;
    const r = await run(file);
    t.diagnostic(r.out.slice(-3000));
    assert.equal(r.code, 0, `${file} failed:\n${r.out.slice(-6000)}`);
  });
}
