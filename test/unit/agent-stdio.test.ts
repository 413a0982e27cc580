// The real guest agent (guest-agent/nkvm-agent.c, compiled here with gcc -static as the image
// builder does) run as a host child process over --stdio, driven by the real AgentClient: the
// same code paths as through a virtio-console port, minus the VM.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Duplex, PassThrough, Readable } from 'node:stream';
import { buildAgent } from '../../lib/images/agent.js';
import { AgentClient } from '../../lib/testing/agent-client.js';
import { encodeExec, encodeFrame, encodeHello, T } from '../../lib/testing/agent-protocol.js';

const sha = (b: Uint8Array): string => createHash('sha256').update(b).digest('hex');
let dir: string;
let agentPath: string;
const children: ChildProcess[] = [];

before(() => {
  dir = mkdtempSync(join(tmpdir(), 'nkvm-agent-test-'));
  agentPath = join(dir, 'nkvm-agent');
  buildAgent(agentPath);
});
after(() => {
  for (const c of children) c.kill('SIGKILL');
  rmSync(dir, { recursive: true, force: true });
});

async function startAgent(junk?: Buffer): Promise<{ client: AgentClient; child: ChildProcess }> {
  const child = spawn(agentPath, ['--stdio'], { stdio: ['pipe', 'pipe', 'inherit'] });
  children.push(child);
  // What a dead agent may leave in a port: the new one skips it until the host's SYNC.
  if (junk !== undefined) child.stdin!.write(junk);
  const client = new AgentClient(Duplex.from({ readable: child.stdout!, writable: child.stdin! }), 'stdio-agent');
  await client.ready(30_000);
  return { client, child };
}

let shared: AgentClient;
before(async () => { shared = (await startAgent()).client; });

test('exec of true, exit statuses, cwd, env, argv without a shell', async () => {
  assert.deepEqual(await shared.exec({ command: 'true' }), { exitCode: 0, signal: undefined, timedOut: false, stdout: Buffer.alloc(0), stderr: Buffer.alloc(0) });
  const r = await shared.exec({ command: 'echo out; echo err >&2; pwd; echo "$A"; exit 42', cwd: '/proc', env: { A: "it's $x" } });
  assert.deepEqual([r.exitCode, r.stdout.toString(), r.stderr.toString()], [42, "out\n/proc\nit's $x\n", 'err\n']);
  assert.equal((await shared.exec({ command: 'pwd', cwd: '/nonexistent' })).exitCode, 125);
  const nf = await shared.exec({ command: ['no-such-command-nkvm'] });
  assert.equal(nf.exitCode, 127);
  assert.match(nf.stderr.toString(), /no-such-command-nkvm/);
  assert.equal((await shared.exec({ command: ['printf', '%s|', 'a b', '$c'] })).stdout.toString(), 'a b|$c|');
  assert.equal((await shared.exec({ command: 'kill -TERM $$' })).signal, 15);
});

test('32 MiB of stdout and 1 MiB of stderr, streamed as they come and kept apart', async () => {
  let calls = 0;
  const r = await shared.exec({ command: 'head -c 33554432 /dev/zero | tr "\\0" o; head -c 1048576 /dev/zero | tr "\\0" e >&2' }, { onStdout: () => calls++ });
  assert.equal(r.exitCode, 0);
  assert.equal(r.stdout.length, 32 * 1024 * 1024);
  assert.equal(r.stderr.length, 1024 * 1024);
  assert.equal(sha(r.stdout), sha(Buffer.alloc(32 * 1024 * 1024, 'o')));
  assert.equal(sha(r.stderr), sha(Buffer.alloc(1024 * 1024, 'e')));
  assert.ok(calls >= 32 * 1024 * 1024 / 65536, `stdout came in ${calls} pieces`);
});

test('8 MiB through stdin, from a buffer and from a stream', async () => {
  const data = randomBytes(8 * 1024 * 1024);
  const r = await shared.exec({ command: 'sha256sum' }, { stdin: data });
  assert.equal(r.stdout.toString().split(' ')[0], sha(data));
  const stream = Readable.from((function* () { for (let i = 0; i < data.length; i += 100_000) yield data.subarray(i, i + 100_000); })());
  assert.equal((await shared.exec({ command: 'wc -c' }, { stdin: stream })).stdout.toString().trim(), String(data.length));
  // A command that reads only part of its stdin still ends (the agent acks what it drops).
  assert.equal((await shared.exec({ command: 'head -c 5' }, { stdin: data })).stdout.length, 5);
  assert.equal((await shared.exec({ command: 'exec 0<&-; sleep 0.2; echo closed' }, { stdin: data })).stdout.toString(), 'closed\n');
});

test('a timeout kills the whole process group and the agent stays usable', async () => {
  let pids = '';
  const t0 = Date.now();
  const r = await shared.exec({ command: 'sleep 1000 & echo $!; sleep 1000' }, { timeout: 500, onStdout: (c) => (pids += c.toString()) });
  assert.equal(r.timedOut, true);
  assert.equal(r.signal, 9);
  assert.ok(Date.now() - t0 < 20_000);
  const bg = Number(pids.trim());
  assert.ok(bg > 0);
  // The background sleep was in the group: gone (or a zombie about to be reaped by init).
  await new Promise((res) => setTimeout(res, 200));
  const state = existsSync(`/proc/${bg}/stat`) ? readFileSync(`/proc/${bg}/stat`, 'utf8').split(') ')[1]![0] : 'gone';
  assert.ok(state === 'gone' || state === 'Z', `background sleep state ${state}`);
  assert.equal((await shared.exec({ command: 'echo alive' })).stdout.toString(), 'alive\n');
});

test('every byte value 0-255 comes back as it was printed', async () => {
  const r = await shared.exec({ command: 'i=0; while [ $i -lt 256 ]; do printf "\\\\$(printf %o $i)"; i=$((i+1)); done' });
  assert.deepEqual([...r.stdout], Array.from({ length: 256 }, (_, i) => i));
});

test('writeFile/readFile of 64 MiB with sha256; errors carry the errno', async () => {
  const data = randomBytes(64 * 1024 * 1024);
  const p = join(dir, 'big.bin');
  await shared.writeFile(p, data, { mode: 0o600 });
  assert.equal(statSync(p).mode & 0o777, 0o600);
  assert.equal(sha(readFileSync(p)), sha(data));
  const back = await shared.readFile(p);
  assert.equal(back.length, data.length);
  assert.equal(sha(back), sha(data));
  await assert.rejects(shared.readFile(join(dir, 'missing')), { code: 'ERR_AGENT_REQUEST', errnoCode: 'ENOENT' });
  await assert.rejects(shared.readFile(dir), { code: 'ERR_AGENT_REQUEST', errnoCode: 'EISDIR' });
  await assert.rejects(shared.writeFile(join(dir, 'no/such/dir'), Buffer.from('x')), { code: 'ERR_AGENT_REQUEST', errnoCode: 'ENOENT' });
  assert.equal((await shared.readFile('/proc/self/comm')).toString(), 'nkvm-agent\n', 'files of unknown size are read to EOF');
  await assert.rejects(shared.readFile('/dev/zero', { maxBytes: 1 << 20 }), { code: 'ERR_FILE_TOO_LARGE' });
});

test('several commands at once, and a 1 MiB command', async () => {
  const rs = await Promise.all([1, 2, 3, 4].map((i) => shared.exec({ command: `sleep 0.${i}; echo ${i}` })));
  assert.deepEqual(rs.map((r) => r.stdout.toString()), ['1\n', '2\n', '3\n', '4\n']);
  const big = await shared.exec({ command: `: ${'x'.repeat(1024 * 1024)}; echo big` });
  assert.deepEqual([big.exitCode, big.stdout.toString()], [0, 'big\n']);
});

test('a throwing onStdout callback, or output past maxOutput, kills the command and rejects', async () => {
  await assert.rejects(shared.exec({ command: 'yes' }, { onStdout: () => { throw new Error('boom'); } }), /boom/);
  await assert.rejects(shared.exec({ command: 'yes' }, { maxOutput: 1 << 20 }), { code: 'ERR_EXEC_OUTPUT_LIMIT' });
  assert.equal((await shared.exec({ command: 'echo ok' })).stdout.toString(), 'ok\n');
});

test('input before the host\'s SYNC (a half-read frame, a stale request) is ignored', async () => {
  const stale = Buffer.concat([Buffer.from([0xff, 0xff, 0, 0, 1, 5, 0, 0, 0]), encodeFrame(T.EXEC, 1, encodeExec({ command: 'echo stale' }))]);
  const { client, child } = await startAgent(stale);
  const r = await client.exec({ command: 'echo fresh' });
  assert.equal(r.stdout.toString(), 'fresh\n');
  client.close();
  child.kill('SIGKILL');
});

test('an agent that dies mid-command rejects with ERR_AGENT_GONE', async () => {
  const { client, child } = await startAgent();
  const p = client.exec({ command: 'sleep 100' });
  setTimeout(() => child.kill('SIGKILL'), 100);
  await assert.rejects(p, { code: 'ERR_AGENT_GONE' });
  assert.throws(() => client.exec({ command: 'true' }), { code: 'ERR_AGENT_GONE' });
});

test('a malformed frame from the guest fails pending requests with ERR_AGENT_PROTOCOL; a new HELLO recovers', async () => {
  const toHost = new PassThrough();
  const toGuest = new PassThrough();
  const client = new AgentClient(Duplex.from({ readable: toHost, writable: toGuest }), 'fake');
  toHost.write(encodeFrame(T.HELLO, 0, encodeHello()));
  await client.ready(5000);
  const p = client.exec({ command: 'true' });
  toHost.write(Buffer.from([1, 0, 0, 0, 0x77, 1, 0, 0, 0, 0]));
  await assert.rejects(p, { code: 'ERR_AGENT_PROTOCOL' });
  assert.throws(() => client.exec({ command: 'true' }), { code: 'ERR_AGENT_PROTOCOL' });
  // An EXIT for an unknown id is ignored; a HELLO makes the channel usable again.
  toHost.write(encodeFrame(T.HELLO, 0, encodeHello()));
  await new Promise((r) => setImmediate(r));
  assert.equal(client.usable, true);
  const q = client.exec({ command: 'true' });
  const exit = Buffer.from([0, 7, 0, 0, 0]);
  toHost.write(Buffer.concat([encodeFrame(T.EXIT, 999, exit), encodeFrame(T.EXIT, 1 + 1, exit)]));
  assert.equal((await q).exitCode, 7);
  // A frame of the wrong kind for a pending request is a violation too.
  const w = client.readFile('/x');
  toHost.write(encodeFrame(T.STDIN_ACK, 3, Buffer.alloc(4)));
  await assert.rejects(w, { code: 'ERR_AGENT_PROTOCOL' });
  client.close();
});

test('advanceClock: EPERM for a user without CAP_SYS_TIME; bad values are refused on the host', async () => {
  // Here the agent runs on the host: as root its step would be the host's clock (even a zero
  // step resets the kernel's NTP state), so the step itself is proven in a guest
  // (test/linux/fork.test.ts: a fork's clock within a second of the host's).
  if (process.getuid?.() !== 0) {
    await assert.rejects(shared.advanceClock(0), (e: unknown) => (e as { errnoCode?: string }).errnoCode === 'EPERM');
  }
  assert.throws(() => shared.advanceClock(1.5), { code: 'ERR_INVALID_ARG' });
  assert.throws(() => shared.advanceClock(2 ** 60), { code: 'ERR_INVALID_ARG' });
  // The agent serves on after either answer.
  assert.equal((await shared.exec({ command: 'echo on' })).stdout.toString(), 'on\n');
});
