// The lab's job script, environment and QEMU command line (no QEMU started here).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { jobScript, labEnvironment, parseEnvSpecs, shellQuote } from '../../lib/lab/job.js';
import { labQemuArgs } from '../../lib/lab/qemu.js';
import { labInit, LAB_MODULES } from '../../lib/lab/l1-init.js';
import { runInLab } from '../../lib/lab/run.js';
import type { Image } from '../../lib/images/manifest.js';

test('the job script cds, exports and execs with exact arguments', () => {
  const dir = mkdtempSync(join(tmpdir(), "nkvm lab 'test'-"));
  try {
    const p = join(dir, 'job.sh');
    const weird = `it's "quoted" $HOME \`x\` \\ end`;
    writeFileSync(p, jobScript(['sh', '-c', 'pwd; printf "%s|" "$0" "$WEIRD" "$NODE_KVM_LAB"', weird], dir, labEnvironment({ WEIRD: weird }, { PATH: process.env.PATH })));
    const r = spawnSync('sh', [p], { encoding: 'utf8', env: {} });
    assert.equal(r.status, 0, r.stderr);
    assert.equal(r.stdout, `${dir}\n${weird}|${weird}|1|`);
    writeFileSync(p, jobScript(['true'], join(dir, 'nope'), {}));
    assert.equal(spawnSync('sh', [p]).status, 125);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('environment: inherited basics, overrides, NODE_KVM_LAB=1 always', () => {
  const env = labEnvironment({ FOO: 'bar', HOME: undefined }, { PATH: '/p', HOME: '/h', SECRET: 's' });
  assert.equal(env.PATH, '/p');
  assert.equal(env.HOME, undefined);
  assert.equal(env.SECRET, undefined);
  assert.equal(env.FOO, 'bar');
  assert.equal(labEnvironment({ NODE_KVM_LAB: '0' }).NODE_KVM_LAB, '1');
  assert.throws(() => labEnvironment({ 'A-B': 'x' }), { code: 'ERR_LAB_ENV' });
  assert.deepEqual(parseEnvSpecs(['A', 'B=1=2', 'MISSING'], { A: 'a' }), { A: 'a', B: '1=2' });
  assert.equal(shellQuote("a'b"), `'a'\\''b'`);
});

test('QEMU: TCG with -cpu max, PVH vmlinux by default, read-only host root, 3 channels', () => {
  const image = { kernel: '/c/bzImage', vmlinux: '/c/vmlinux', initrd: '/c/initrd' } as Image;
  const sockets = { console: '/t/c', stdout: '/t/o', stderr: '/t/e' };
  const a = labQemuArgs({ image, memory: '3G', cpus: 2, jobPath: '/t/job.sh', sockets });
  const at = (flag: string): string | undefined => a[a.indexOf(flag) + 1];
  assert.equal(at('-accel'), 'tcg');
  assert.equal(at('-cpu'), 'max');
  assert.equal(at('-m'), '3G');
  assert.equal(at('-smp'), '2');
  assert.equal(at('-kernel'), '/c/vmlinux');
  assert.match(at('-append') ?? '', /nkvm\.lab\.job=\/t\/job\.sh/);
  assert.match(at('-virtfs') ?? '', /path=\/,mount_tag=hostroot,.*readonly=on/);
  assert.equal(a.filter((x) => x.startsWith('socket,')).length, 3);
  assert.equal(labQemuArgs({ image, memory: '3G', cpus: 1, jobPath: '/j', sockets, pvh: false })[a.indexOf('-kernel') + 1], '/c/bzImage');
});

test('L1 init loads kvm_amd and reports the status marker', () => {
  assert.ok(LAB_MODULES.includes('kvm_amd'));
  const init = labInit();
  assert.match(init, /mount -t 9p .*hostroot/);
  assert.match(init, /NKVM-LAB-EXIT=\$rc/);
  assert.match(init, /poweroff -f/);
});

test('runInLab validates its options before booting anything', async () => {
  const image = { kernel: '/x', vmlinux: '/x', initrd: '/x' } as Image;
  await assert.rejects(runInLab({ command: [], image }), { code: 'ERR_LAB_COMMAND' });
  await assert.rejects(runInLab({ command: ['true'], image, timeoutMs: 0 }), { code: 'ERR_LAB_TIMEOUT' });
  await assert.rejects(runInLab({ command: ['true'], image, cpus: 0 }), { code: 'ERR_LAB_CPUS' });
  await assert.rejects(runInLab({ command: ['true'], image, memory: 'lots' }), { code: 'ERR_LAB_MEMORY' });
});
