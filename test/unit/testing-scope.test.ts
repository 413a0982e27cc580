// VmScope without KVM: artifact directory naming, error augmentation, cleanup on success.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { VmScope, withVms } from '../../lib/testing/scope.js';

function withRoot(t: { after(fn: () => void): void }): string {
  const root = mkdtempSync(join(tmpdir(), 'nk-art-'));
  const old = process.env.NODE_KVM_ARTIFACTS;
  process.env.NODE_KVM_ARTIFACTS = root;
  t.after(() => {
    if (old === undefined) delete process.env.NODE_KVM_ARTIFACTS;
    else process.env.NODE_KVM_ARTIFACTS = old;
    rmSync(root, { recursive: true, force: true });
  });
  return root;
}

test('a failing body: the error names the kept artifact directory, in message and stack', async (t) => {
  const root = withRoot(t);
  let dir = '';
  const err = await withVms('my test: "quoted"/name', async (scope) => {
    dir = scope.dir;
    throw new Error('boom');
  }).catch((e: unknown) => e as Error);
  assert.ok(dir.startsWith(join(root, 'my-test-quoted-name-')), dir);
  assert.ok(existsSync(dir));
  assert.match(err.message, /^boom\nnode-kvm artifacts \(console logs, pcaps\): /);
  assert.ok(err.message.includes(dir));
  assert.ok(err.stack?.includes(dir));
});

test('a passing body removes its artifact directory; non-Error throws are wrapped', async (t) => {
  withRoot(t);
  let dir = '';
  assert.equal(await withVms('ok', async (scope) => { dir = scope.dir; return 5; }), 5);
  assert.ok(!existsSync(dir));
  const scope = new VmScope('x');
  const e = scope.fail('plain string') as Error;
  assert.match(e.message, /^plain string\nnode-kvm artifacts/);
  await scope.close(true);
  assert.ok(existsSync(scope.dir));
});
