// node-kvm/testing over the serial console (agent: false; agent-exec.test.ts covers the agent's
// channel) against a real guest: exec's stdout/stderr/exit status, output that holds
// marker text, binary output, a timeout the VM survives, a 100 KB file round trip, and a
// guest that reboots or panics in the middle of a command.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { bootVm, ExecFailedError, type TestVm } from '../../lib/testing/index.js';
import { kvmUnavailableReason, inCI } from '../helpers/kvm.js';

// Skipped only outside CI, and loudly; in CI a missing /dev/kvm fails the boot in before().
const skip = kvmUnavailableReason() !== undefined && !inCI ? kvmUnavailableReason() : undefined;
if (skip !== undefined) process.stderr.write(`\n*** SKIPPING testing-exec: ${skip} ***\n`);
let vm: TestVm;

before(async () => {
  if (skip === undefined) vm = await bootVm({ name: 'exec', memory: '128M', agent: false, files: { '/tmp/given.txt': Buffer.from('given at boot\n') } });
}, { timeout: 300_000 });
after(async () => { await vm?.close(); });

const opts = { skip, timeout: 300_000 };

test('exec separates stdout, stderr and the exit status', opts, async () => {
  const r = await vm.exec('echo out; echo err >&2; exit 42');
  assert.deepEqual([r.stdout, r.stderr, r.exitCode], ['out\n', 'err\n', 42]);
  assert.equal((await vm.exec('true')).exitCode, 0);
  assert.equal((await vm.exec('if then')).exitCode, 2, 'a syntax error ends only the command');
  assert.equal((await vm.exec('pwd', { cwd: '/proc' })).stdout, '/proc\n');
  assert.equal((await vm.exec('echo "$A-$B"', { env: { A: "it's", B: '$x' } })).stdout, "it's-$x\n");
  assert.equal((await vm.exec('tr a-z A-Z', { input: 'shout\n' })).stdout, 'SHOUT\n');
  assert.equal((await vm.exec('cat /tmp/given.txt')).stdout, 'given at boot\n');
});

test('output containing marker text does not confuse the protocol', opts, async () => {
  const r = await vm.exec(`printf '%s\\n' __NKB_x:0:0:0:0 __NKE_x __NKM_ NODE-KVM-READY 'node-kvm# '`);
  assert.equal(r.stdout, '__NKB_x:0:0:0:0\n__NKE_x\n__NKM_\nNODE-KVM-READY\nnode-kvm# \n');
  assert.equal((await vm.exec('echo next')).stdout, 'next\n');
});

test('binary output survives: 256 random bytes compared by sha256', opts, async () => {
  const r = await vm.execOk('head -c 256 /dev/urandom > /tmp/rnd; cat /tmp/rnd; sha256sum /tmp/rnd >&2');
  assert.equal(r.stdoutBytes.length, 256);
  assert.equal(createHash('sha256').update(r.stdoutBytes).digest('hex'), r.stderr.split(' ')[0]);
});

test('execOk throws ERR_EXEC_FAILED with the output', opts, async () => {
  await assert.rejects(vm.execOk('echo why >&2; exit 3'), (e: unknown) => e instanceof ExecFailedError && e.code === 'ERR_EXEC_FAILED' && e.exitCode === 3 && /why/.test(e.message));
});

test('a timeout throws ERR_EXEC_TIMEOUT and the VM stays usable', opts, async () => {
  await assert.rejects(vm.exec('sleep 100', { timeout: 2000 }), (e: unknown) => {
    const err = e as { code?: string; recovered?: boolean };
    return err.code === 'ERR_EXEC_TIMEOUT' && err.recovered === true;
  });
  assert.equal((await vm.exec('echo alive')).stdout, 'alive\n');
  assert.equal((await vm.exec('pgrep -x sleep || echo none')).stdout, 'none\n', 'the timed-out command is gone');
});

test('writeFile/readFile round trip of 100 KB', { ...opts, timeout: 600_000 }, async () => {
  const data = Buffer.alloc(100 * 1024);
  for (let i = 0; i < data.length; i++) data[i] = (i * 131 + (i >> 9)) & 0xff;
  await vm.writeFile('/tmp/big.bin', data, { timeout: 240_000 });
  const sum = (await vm.execOk('sha256sum /tmp/big.bin')).stdout.split(' ')[0];
  assert.equal(sum, createHash('sha256').update(data).digest('hex'));
  const back = await vm.readFile('/tmp/big.bin', { timeout: 240_000 });
  assert.ok(back.equals(data));
});

test('a guest that reboots or panics mid-exec ends the call with ERR_VM_ENDED, not a hang', opts, async () => {
  // reboot=k on the cmdline: a forced reboot goes through the i8042; panic=-1 turns the
  // sysrq crash into an immediate reboot too.
  for (const cmd of ['reboot -f', 'echo c > /proc/sysrq-trigger']) {
    await using v = await bootVm({ name: 'ends', memory: '128M', agent: false });
    await assert.rejects(v.exec(`sleep 1; ${cmd}; sleep 100`, { timeout: 120_000 }), (e: unknown) => {
      const err = e as { code?: string; message?: string };
      return err.code === 'ERR_VM_ENDED' && /reboot/.test(err.message ?? '');
    }, `'${cmd}' did not end the exec with ERR_VM_ENDED`);
    await assert.rejects(v.exec('echo after'), (e: unknown) => (e as { code?: string }).code === 'ERR_VM_ENDED' || (e as { code?: string }).code === 'ERR_VM_UNUSABLE');
  }
});
