// docs/architecture.md is generated (scripts/gen-architecture.mjs) from the layout module and a
// Platform: the committed file must match what the code generates now.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..', '..');

test('docs/architecture.md matches the layout module and the platform', () => {
  const r = spawnSync(process.execPath, [join(root, 'scripts', 'gen-architecture.mjs'), '--check'], { cwd: root, encoding: 'utf8' });
  assert.equal(r.status, 0, `${r.stderr}${r.stdout}`);
});
