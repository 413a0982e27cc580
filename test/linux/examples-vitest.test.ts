// The vitest example (examples/vitest) run through vitest itself, as its user would. Its own
// file, so the lab runner can give it a lab boot of its own beside the other examples.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { requireKvm } from '../helpers/kvm.js';

const dir = join(dirname(fileURLToPath(import.meta.url)), '..', '..', 'examples');

/** Run a child to its end, collecting stdout and stderr together. */
function collect(cmd: string, args: string[], opts: { cwd: string; env?: NodeJS.ProcessEnv }): Promise<{ code: number | null; out: string }> {
  return new Promise((resolve) => {
    const child = spawn(cmd, args, { cwd: opts.cwd, stdio: ['ignore', 'pipe', 'pipe'], env: opts.env ?? process.env });
    let out = '';
    child.stdout.on('data', (d) => { out += d; });
    child.stderr.on('data', (d) => { out += d; });
    child.on('error', (e) => { out += `\n${e.message}`; });
    child.on('close', (code) => resolve({ code, out }));
  });
}

// The vitest example runs through vitest itself (it transforms the TypeScript source). It has
// its own package.json (vitest, and node-kvm linked from this repository), so the root's
// dependency tree holds none of the platform-specific packages vitest pulls in (see
// examples/vitest/.npmrc). Installed here; inside the nested lab, which has no network, from
// npm's cache or the node_modules scripts/setup.sh installed on the host.
test('example vitest/boot.vitest.ts under vitest', { timeout: 1_200_000 }, async (t) => {
  if (!requireKvm(t)) return;
  const exampleDir = join(dir, '..', '..', 'examples', 'vitest');
  const npm = join(dirname(process.execPath), 'npm');
  const inLab = process.env.NODE_KVM_LAB === '1';
  const install = await collect(npm, ['install', '--no-audit', '--no-fund', inLab ? '--offline' : '--prefer-offline'], { cwd: exampleDir });
  assert.equal(install.code, 0, `npm install in examples/vitest failed:\n${install.out.slice(-4000)}`);
  const vitest = join(exampleDir, 'node_modules', 'vitest', 'vitest.mjs');
  const env: NodeJS.ProcessEnv = { ...process.env, CI: 'true' };
  delete env.NODE_TEST_CONTEXT;
  const r = await collect(process.execPath, [vitest, 'run'], { cwd: exampleDir, env });
  t.diagnostic(r.out.slice(-3000));
  assert.equal(r.code, 0, `vitest example failed:\n${r.out.slice(-6000)}`);
});
