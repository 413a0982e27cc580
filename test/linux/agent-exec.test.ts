// node-kvm/testing over the guest agent's virtio-console port, with the real Debian kernel:
// exec of true, 32 MiB of stdout with 1 MiB of stderr, 8 MiB of stdin, a timeout that kills the
// process group, every byte value, writeFile/readFile of 64 MiB, a 1 MiB command, commands at
// once, an agent killed mid-command, the console fallback, and node-kvm run's nkvm.run=.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { Readable } from 'node:stream';
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { bootVm, ExecTimeoutError, GuestFileError, type TestVm } from '../../lib/testing/index.js';
import { kvmUnavailableReason, inCI } from '../helpers/kvm.js';

const skip = kvmUnavailableReason() !== undefined && !inCI ? kvmUnavailableReason() : undefined;
if (skip !== undefined) process.stderr.write(`\n*** SKIPPING agent-exec: ${skip} ***\n`);
const sha = (b: Uint8Array): string => createHash('sha256').update(b).digest('hex');
let vm: TestVm;

before(async () => {
  if (skip === undefined) vm = await bootVm({ name: 'agent', memory: '512M', files: { '/tmp/given.txt': Buffer.from('given at boot\n') } });
}, { timeout: 300_000 });
after(async () => { await vm?.close(); });

const opts = { skip, timeout: 600_000 };

test('the agent channel is up and exec of true works', opts, async () => {
  assert.equal(vm.channel, 'agent', `agent not in use: ${vm.agentProblem}`);
  assert.equal((await vm.exec('true')).exitCode, 0);
  const r = await vm.exec('echo out; echo err >&2; exit 42');
  assert.deepEqual([r.stdout, r.stderr, r.exitCode], ['out\n', 'err\n', 42]);
  assert.equal((await vm.exec('pwd', { cwd: '/proc' })).stdout, '/proc\n');
  assert.equal((await vm.exec('echo "$A-$B"', { env: { A: "it's", B: '$x' } })).stdout, "it's-$x\n");
  assert.equal((await vm.exec('tr a-z A-Z', { input: 'shout\n' })).stdout, 'SHOUT\n');
  assert.equal((await vm.exec('cat /tmp/given.txt')).stdout, 'given at boot\n');
  assert.equal((await vm.exec('if then')).exitCode, 2, 'a syntax error ends only the command');
});

test('32 MiB of stdout and 1 MiB of stderr, streamed and kept apart', opts, async () => {
  let pieces = 0;
  const r = await vm.exec('head -c 33554432 /dev/zero | tr "\\0" o; head -c 1048576 /dev/zero | tr "\\0" e >&2', { onStdout: () => pieces++, timeout: 300_000 });
  assert.equal(r.exitCode, 0);
  assert.equal(r.stdoutBytes.length, 32 * 1024 * 1024);
  assert.equal(r.stderrBytes.length, 1024 * 1024);
  assert.equal(sha(r.stdoutBytes), sha(Buffer.alloc(32 * 1024 * 1024, 'o')));
  assert.equal(sha(r.stderrBytes), sha(Buffer.alloc(1024 * 1024, 'e')));
  assert.ok(pieces > 1, 'stdout arrived in pieces, as it was written');
});

test('8 MiB through stdin, from a buffer and from a stream', opts, async () => {
  const data = randomBytes(8 * 1024 * 1024);
  assert.equal((await vm.exec('sha256sum', { input: data, timeout: 300_000 })).stdout.split(' ')[0], sha(data));
  const stream = Readable.from((function* () { for (let i = 0; i < data.length; i += 300_000) yield data.subarray(i, i + 300_000); })());
  assert.equal((await vm.exec('wc -c', { stdin: stream, timeout: 300_000 })).stdout.trim(), String(data.length));
});

test('a timeout kills the process group and the VM stays usable', opts, async () => {
  await assert.rejects(vm.exec('sleep 1000 & sleep 1000', { timeout: 3000 }), (e: unknown) => e instanceof ExecTimeoutError && e.recovered);
  assert.equal((await vm.exec('echo alive')).stdout, 'alive\n');
  assert.equal((await vm.exec('pgrep -x sleep || echo none')).stdout, 'none\n', 'both sleeps are gone');
});

test('every byte value 0-255 comes back as printed', opts, async () => {
  const r = await vm.exec('i=0; while [ $i -lt 256 ]; do printf "\\\\$(printf %o $i)"; i=$((i+1)); done');
  assert.deepEqual([...r.stdoutBytes], Array.from({ length: 256 }, (_, i) => i));
});

test('writeFile/readFile of 64 MiB, checked by sha256 on both sides', opts, async () => {
  const data = randomBytes(64 * 1024 * 1024);
  await vm.writeFile('/tmp/big.bin', data, { timeout: 600_000, mode: 0o640 });
  const r = await vm.execOk('sha256sum /tmp/big.bin; stat -c %a /tmp/big.bin', { timeout: 300_000 });
  assert.equal(r.stdout, `${sha(data)}  /tmp/big.bin\n640\n`);
  const back = await vm.readFile('/tmp/big.bin', { timeout: 600_000 });
  assert.equal(sha(back), sha(data));
  await vm.exec('rm /tmp/big.bin');
  await assert.rejects(vm.readFile('/nonexistent'), (e: unknown) => e instanceof GuestFileError && e.errnoCode === 'ENOENT' && e.code === 'ERR_EXEC_FAILED');
});

test('a 1 MiB command runs; several commands run at once', opts, async () => {
  const big = await vm.exec(`: ${'x'.repeat(1024 * 1024)}; echo big`, { timeout: 300_000 });
  assert.deepEqual([big.exitCode, big.stdout], [0, 'big\n']);
  const t0 = Date.now();
  const rs = await Promise.all([1, 2, 3].map((i) => vm.exec(`sleep 2; echo ${i}`)));
  assert.deepEqual(rs.map((r) => r.stdout), ['1\n', '2\n', '3\n']);
  // Not a timing assertion on speed: three 2 s sleeps run at once finish well before 3 x 2 s + boot noise.
  assert.ok(Date.now() - t0 < 60_000);
});

test('an agent killed mid-command: exec rejects with a code, and the restarted agent serves again', opts, async () => {
  await assert.rejects(vm.exec('sleep 0.5; kill -9 $PPID; sleep 100', { timeout: 120_000 }),
    (e: unknown) => ['ERR_AGENT_DIED', 'ERR_AGENT_GONE'].includes((e as { code?: string }).code ?? ''));
  // /init restarts the agent; its HELLO makes the channel usable again.
  const deadline = Date.now() + 120_000;
  for (;;) {
    try {
      assert.equal((await vm.exec('echo back', { timeout: 60_000 })).stdout, 'back\n');
      break;
    } catch (e) {
      if (Date.now() > deadline) throw e;
      await new Promise((r) => setTimeout(r, 1000));
    }
  }
  assert.equal(vm.channel, 'agent');
  await vm.exec('pkill -x sleep; true');
});

test('a guest that reboots mid-command ends the exec with ERR_VM_ENDED', opts, async () => {
  await using v = await bootVm({ name: 'ends', memory: '128M' });
  assert.equal(v.channel, 'agent');
  await assert.rejects(v.exec('sleep 1; reboot -f; sleep 100', { timeout: 120_000 }),
    (e: unknown) => (e as { code?: string }).code === 'ERR_VM_ENDED' && /reboot/.test((e as Error).message));
});

test('without the agent (agent: false) the same calls go over the console', opts, async () => {
  await using v = await bootVm({ name: 'console', memory: '128M', agent: false });
  assert.equal(v.channel, 'console');
  const r = await v.exec('echo out; echo err >&2; exit 3', { stdin: Readable.from([Buffer.from('x')]) });
  assert.deepEqual([r.stdout, r.stderr, r.exitCode], ['out\n', 'err\n', 3]);
  await v.writeFile('/tmp/f', 'hello');
  assert.equal((await v.readFile('/tmp/f')).toString(), 'hello');
});

test('node-kvm run with nkvm.run= runs the command over the agent: stdout, stderr, stdin and exit status', opts, async () => {
  const bin = fileURLToPath(new URL('../../../bin/node-kvm.js', import.meta.url));
  const child = spawn(process.execPath, [bin, 'run', '--console', 'none', '--timeout', '400', '--append', 'nkvm.run="tr a-z A-Z; echo err >&2; exit 7"'],
    { stdio: ['pipe', 'pipe', 'pipe'] });
  child.stdin.end('shout\n');
  let out = '';
  let err = '';
  child.stdout.on('data', (d: Buffer) => (out += d.toString()));
  child.stderr.on('data', (d: Buffer) => (err += d.toString()));
  const code = await new Promise<number | null>((resolve) => child.on('close', resolve));
  assert.equal(out, 'SHOUT\n', `stderr: ${err}`);
  assert.match(err, /^err$/m);
  assert.equal(code, 7);
});
