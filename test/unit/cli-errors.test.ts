// Bad invocations of `node-kvm run`, each as a child process: the exit status the README gives
// (64 usage and option ranges, 1 other errors), a coded message, no stack trace, and a prompt
// exit (a FIFO as the kernel included). The same cases run in-process show no fd left open.
// None of them reaches /dev/kvm: each fails before a VM would be created.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { createServer } from 'node:net';
import { main } from '../../lib/cli/main.js';
import { findCommand } from '../../lib/net/netns.js';
import { runCli, writeEndlessKernel } from '../helpers/cli.js';

const dir = mkdtempSync(join(tmpdir(), 'nkvm-cli-errors-'));
const fifo = join(dir, 'fifo');
execFileSync('mkfifo', [fifo]);
const kernel = writeEndlessKernel(join(dir, 'mb.elf'));
test.after(() => rmSync(dir, { recursive: true, force: true }));

/** [argv after `run`, exit status, code in the message] */
const CASES: Array<[string[], number, string]> = [
  [['--kernel', '/nonexistent'], 1, 'ERR_FILE'],
  [['--kernel', dir], 1, 'ERR_FILE'],
  [['--kernel='], 64, 'ERR_USAGE'],
  [['--kernel', fifo, '--timeout', '5'], 1, 'ERR_FILE'],
  [['--kernel', '/dev/zero'], 1, 'ERR_FILE'],
  [['--kernel', kernel, '--initrd', '/dev/zero'], 1, 'ERR_FILE'],
  [['--kernel', kernel, '--initrd', fifo], 1, 'ERR_FILE'],
  [['--kernel', kernel, '--console', 'file:/no/such/dir/x'], 1, 'ERR_FILE'],
  [['--kernel', kernel, '--console', `file:${fifo}`], 1, 'ERR_FILE'],
  [['--kernel', kernel, '--console', `file:${dir}`], 1, 'ERR_FILE'],
  [['--kernel', kernel, '--net', 'switch:cli-errors', '--pcap', '/no/such/dir/p.pcap'], 1, 'ERR_FILE'],
  [['--kernel', kernel, '--net', 'switch:cli-errors', '--pcap', '/dev/null'], 1, 'ERR_FILE'],
  [['--kernel', kernel, '--net', 'switch:cli-errors', '--pcap='], 64, 'ERR_USAGE'],
  [['--memory', 'abc'], 64, 'ERR_INVALID_MEMORY'],
  [['--memory', '1T'], 64, 'ERR_MEMORY_TOO_LARGE'],
  [['--memory', '1M'], 64, 'ERR_INVALID_MEMORY'],
  [['--memory', '99999999999999999999999G'], 64, 'ERR_INVALID_MEMORY'],
  [['--cpus', '0'], 64, 'ERR_USAGE'],
  [['--cpus', '5000'], 64, 'ERR_USAGE'],
  [['--cpus', 'two'], 64, 'ERR_USAGE'],
  [['--timeout', '0'], 64, 'ERR_USAGE'],
  [['--timeout', '1.5'], 64, 'ERR_USAGE'],
  [['--console', 'tty'], 64, 'ERR_USAGE'],
  [['--initrd', '/x'], 64, 'ERR_USAGE'],
  [['--net', 'wifi:x'], 64, 'ERR_USAGE'],
  // Malformed user network specs: usage errors before passt or a VM.
  ...['user,', 'user,fwd=tcp:8080', 'user,fwd=sctp:1:2', 'user,fwd=tcp:1:0', 'user,fwd=tcp:1:65536', 'user,fwd=tcp:99999:80',
    'user,fwd=tcp:-1:80', 'user,fwd=tcp:1:80,bogus', 'user,fwd=tcp:a:80', 'userx'].map((spec): [string[], number, string] => [['--kernel', kernel, '--net', spec], 64, 'ERR_USAGE']),
  [['--pcap', '/tmp/x.pcap'], 64, 'ERR_USAGE'],
  [['--bogus'], 64, 'ERR_USAGE'],
];

for (const [argv, status, code] of CASES) {
  test(`node-kvm run ${argv.join(' ')} → exit ${status}, [${code}], no stack`, async () => {
    const r = await runCli(['run', ...argv], { killAfterMs: 30_000 });
    const where = `stderr:\n${r.stderr}`;
    assert.notEqual(r.status, null, `exited by itself (killed after 30 s otherwise) ${where}`);
    assert.equal(r.status, status, where);
    assert.ok(r.stderr.includes(`[${code}`), `message carries [${code}]: ${where}`);
    assert.doesNotMatch(r.stderr, /^\s+at /m, `no stack trace: ${where}`);
    assert.doesNotMatch(r.stderr, /internal error \(a bug/, where);
    // Loaded host or not: these fail before any VM; a hang would take the 30 s kill.
    assert.ok(r.ms < 25_000, `exited promptly (${r.ms} ms)`);
  });
}

test('node-kvm run --net user,fwd=tcp:PORT:80 with PORT in use → exit 1, [ERR_NET_PORT_IN_USE], no passt left', { skip: findCommand('passt') === undefined ? 'passt is not installed' : false }, async () => {
  const busy = createServer();
  await new Promise<void>((r) => busy.listen(0, '127.0.0.1', () => r()));
  const port = (busy.address() as { port: number }).port;
  const passts = (): string => execFileSync('sh', ['-c', "pgrep -x 'passt(\\.avx2)?' || true"], { encoding: 'utf8' }).trim();
  const before = passts();
  try {
    const r = await runCli(['run', '--kernel', kernel, '--net', `user,fwd=tcp:${port}:80`], { killAfterMs: 30_000 });
    assert.equal(r.status, 1, r.stderr);
    assert.ok(r.stderr.includes('[ERR_NET_PORT_IN_USE') && r.stderr.includes(String(port)), r.stderr);
    assert.doesNotMatch(r.stderr, /^\s+at /m);
    assert.equal(passts(), before, 'no passt left running');
  } finally {
    busy.close();
  }
});

function captureIo(): { io: Parameters<typeof main>[1]; err: () => string } {
  let e = '';
  const sink = (add: (s: string) => void): Writable => new Writable({ write(c: Buffer, _enc, cb) { add(c.toString()); cb(); } });
  return { io: { stdout: sink(() => {}), stderr: sink((s) => (e += s)), env: {} }, err: () => e };
}

test('in-process, the failing runs leave no fd open', async () => {
  const fds = (): string[] => readdirSync('/proc/self/fd');
  const before = fds();
  for (const [argv, status] of CASES) {
    if (!argv.includes(kernel) && !argv.includes(fifo) && !argv.includes(dir)) continue;
    const c = captureIo();
    assert.equal(await main(['run', ...argv], c.io), status, c.err());
  }
  // Closing a WriteStream finishes on a later turn; give the loop a moment.
  await new Promise((r) => setTimeout(r, 50));
  assert.deepEqual(fds(), before);
});
