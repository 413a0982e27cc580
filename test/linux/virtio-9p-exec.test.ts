// `node-kvm exec`: a host command under the guest kernel, with the host's root read-only, an
// overlay, and the caller's directory writable at the same path.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { requireKvm } from '../helpers/kvm.js';
import { execInVm } from '../../lib/testing/index.js';
import { defaultImage } from './helpers.js';

const bin = fileURLToPath(new URL('../../../bin/node-kvm.js', import.meta.url));

test('node-kvm exec: kernel, cwd and node in the guest; the status is the command\'s; writes land in cwd', { timeout: 1_200_000 }, async (t) => {
  if (!requireKvm(t)) return;
  const img = await defaultImage();
  const dir = mkdtempSync(join(tmpdir(), 'nkvm-exec-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  writeFileSync(join(dir, 'input.txt'), 'from the host\n');
  const r = spawnSync(process.execPath, [bin, 'exec', '--', 'sh', '-c',
    'uname -r; pwd; node -e "console.log(6*7)"; cat input.txt; echo written > out.txt; echo oops >&2; touch /usr/overlay-only; exit 7'],
  { cwd: dir, encoding: 'utf8', timeout: 900_000 });
  const lines = r.stdout.split('\n');
  assert.equal(r.status, 7, `stderr: ${r.stderr}`);
  assert.equal(lines[0], img.manifest.kernel.release, 'the guest kernel');
  assert.equal(lines[1], dir);
  assert.equal(lines[2], '42');
  assert.equal(lines[3], 'from the host');
  assert.match(r.stderr, /oops/);
  assert.equal(readFileSync(join(dir, 'out.txt'), 'utf8'), 'written\n');
  assert.throws(() => readFileSync('/usr/overlay-only'), 'writes outside cwd stay in the guest');

  const ok = await execInVm(['true'], { cwd: dir });
  assert.equal(ok.exitCode, 0);
  const bad = await execInVm(['sh', '-c', 'printf "\\000\\377bytes"; exit 3'], { cwd: dir });
  assert.equal(bad.exitCode, 3);
  assert.deepEqual([...bad.stdout], [0, 255, ...Buffer.from('bytes')]);
  const missing = await execInVm(['/no/such/program'], { cwd: dir });
  assert.equal(missing.exitCode, 127);
});
