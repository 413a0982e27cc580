// CLI frame: table dispatch, usage errors exit 64 with a message, --help.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Writable } from 'node:stream';
import { main, COMMANDS } from '../../lib/cli/main.js';
import { parseCommandArgs, UsageError, intOption, EXIT_USAGE } from '../../lib/cli/args.js';
import type { CliIo } from '../../lib/cli/args.js';

function io(): CliIo & { out: () => string; err: () => string } {
  let o = '';
  let e = '';
  const sink = (add: (s: string) => void): Writable => new Writable({ write(c: Buffer, _enc, cb) { add(c.toString()); cb(); } });
  return { stdout: sink((s) => (o += s)), stderr: sink((s) => (e += s)), env: {}, out: () => o, err: () => e };
}

test('commands come from one table', () => {
  assert.deepEqual(Object.keys(COMMANDS).filter((k) => ['image', 'lab', 'doctor'].includes(k)).sort(), ['doctor', 'image', 'lab']);
});

test('no command or an unknown one exits 64 and says what exists', async () => {
  let c = io();
  assert.equal(await main([], c), EXIT_USAGE);
  assert.match(c.out(), /usage: node-kvm <command>/);
  c = io();
  assert.equal(await main(['frobnicate'], c), EXIT_USAGE);
  assert.match(c.err(), /unknown command "frobnicate".*image, lab, doctor/);
  c = io();
  assert.equal(await main(['--help'], c), 0);
  assert.match(c.out(), /lab\s+run a command inside the nested lab/);
});

test('bad options exit 64 with the command usage', async () => {
  const cases: Array<[string[], RegExp]> = [
    [['image'], /missing subcommand/],
    [['image', 'fly'], /unknown subcommand "fly"/],
    [['image', 'build', '--bogus'], /Unknown option '--bogus'/],
    [['image', 'path', 'a', 'b'], /at most one NAME/],
    [['lab'], /missing command after "--"/],
    [['lab', 'ls'], /put the command after "--"/],
    [['lab', '--cpus', '0', '--', 'true'], /--cpus must be an integer/],
    [['lab', '--timeout', 'soon', '--', 'true'], /--timeout must be an integer/],
    [['lab', '--memory', 'lots', '--', 'true'], /--memory must look like/],
    [['lab', '--env', '1BAD', '--', 'true'], /--env 1BAD/],
    [['doctor', 'extra'], /Unexpected argument/],
    [['run', '--kernel', '/boot/x', '--boot-protocol', '16-bit'], /--boot-protocol must be 32-bit or 64-bit/],
  ];
  for (const [argv, re] of cases) {
    const c = io();
    assert.equal(await main(argv, c), EXIT_USAGE, argv.join(' '));
    assert.match(c.err(), re, argv.join(' '));
  }
});

test('<command> --help prints its usage; --help after "--" belongs to the guest command', async () => {
  const c = io();
  assert.equal(await main(['lab', '--help'], c), 0);
  assert.match(c.out(), /usage: node-kvm lab/);
  const d = io();
  assert.equal(await main(['lab', '--cpus', 'x', '--', 'ls', '--help'], d), EXIT_USAGE);
});

test('parseCommandArgs splits at "--" and keeps the rest untouched', () => {
  const r = parseCommandArgs(['--timeout', '5', '--', 'sh', '-c', 'exit 3', '--', 'x'], { timeout: { type: 'string' } });
  assert.equal(r.values.timeout, '5');
  assert.deepEqual(r.rest, ['sh', '-c', 'exit 3', '--', 'x']);
  assert.equal(parseCommandArgs([], {}).rest, undefined);
  assert.throws(() => parseCommandArgs(['--nope'], {}), UsageError);
  assert.equal(intOption('12', '--n', 1, 20), 12);
  assert.throws(() => intOption('1.5', '--n', 1, 20), UsageError);
});

test('doctor --json prints a report', async () => {
  const c = io();
  const code = await main(['doctor', '--json'], c);
  const r = JSON.parse(c.out()) as { canBootLinuxDirectly: boolean; checks: unknown[] };
  assert.equal(typeof r.canBootLinuxDirectly, 'boolean');
  assert.ok(r.checks.length >= 6);
  assert.ok(code === 0 || code === 1);
});
