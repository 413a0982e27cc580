// The exec protocol without KVM: the lines typed at the guest and the parsing of its replies,
// fed through a fake console (a MachineConsole whose "guest" is this test).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { MachineConsole } from '../../lib/machine/console.js';
import {
  ackPattern, chunkText, decodeBase64Section, execLine, execReplyPattern, marker, parseExecReply, printMarker, shellQuote,
  stripConsoleNoise, uploadLines, MAX_LINE,
} from '../../lib/testing/protocol.js';

function reply(id: string, rc: number, out: Buffer, err: Buffer, timedOut = false): string {
  const b64 = (b: Buffer): string => (b.length === 0 ? '' : `${(b.toString('base64').match(/.{1,76}/g) ?? []).join('\r\n')}\r\n`);
  return `${marker('B', id)}:${rc}:${out.length}:${err.length}:${timedOut ? 1 : 0}\r\n${b64(out)}${marker('M', id)}\r\n${b64(err)}${marker('E', id)}\r\n`;
}

function sh(script: string): string {
  return execFileSync('sh', ['-c', script], { encoding: 'latin1' });
}

test('the typed text never contains the marker it makes the shell print', () => {
  const id = 'abc123';
  for (const kind of ['B', 'M', 'E', 'S', 'A'] as const) {
    const cmd = printMarker(kind, id);
    assert.ok(!cmd.includes(marker(kind, id)), cmd);
    assert.equal(sh(cmd), `${marker(kind, id)}\n`);
  }
  const line = execLine(id, '/tmp/.nk/c', 30);
  for (const kind of ['B', 'M', 'E'] as const) assert.ok(!line.includes(marker(kind, id)));
  assert.ok(line.length < MAX_LINE);
});

test('shellQuote survives quotes, spaces and newlines in a real shell', () => {
  const s = `it's a "test" $HOME \`x\` \\ \n end`;
  assert.equal(sh(`printf %s ${shellQuote(s)}`), s);
});

test('the exec line runs in a host sh and its reply parses back to the same bytes', (t) => {
  const dir = sh('mktemp -d').trim();
  t.after(() => sh(`rm -rf ${dir}`));
  const script = `${dir}/c`;
  sh(`printf '%s\\n' 'printf "a\\\\000b\\\\377"; echo err >&2; exit 7' > ${script}`);
  const line = execLine('t1', script, 5).replaceAll('/tmp/.nk', dir);
  const out = sh(`${line}`);
  const r = parseExecReply(out, 't1');
  assert.equal(r.exitCode, 7);
  assert.equal(r.timedOut, false);
  assert.deepEqual([...r.stdout], [0x61, 0, 0x62, 0xff]);
  assert.equal(r.stderr.toString(), 'err\n');
});

// The watchdog is started in the background and makes itself a session leader with setsid.
// A command quicker than that fork+exec used to find no watchdog group to kill: the shell then
// waited the whole timeout, and the watchdog reported a timeout (and killed the command's
// background jobs). A setsid that is slow to start the watchdog reproduces that order.
for (const shell of ['dash', 'busybox']) {
  test(`a command that ends before the watchdog has started is not reported as timed out (${shell} sh)`, (t) => {
    const argv0 = shell === 'busybox' ? ['busybox', 'sh'] : ['dash'];
    // Both are required: dash is Debian's /bin/sh, and scripts/setup.sh installs busybox-static.
    assert.doesNotThrow(() => execFileSync(argv0[0]!, [...argv0.slice(1), '-c', 'true']), `${shell} is missing: run scripts/setup.sh`);
    const dir = sh('mktemp -d').trim();
    t.after(() => sh(`[ -s ${dir}/pid ] && kill -9 -$(cat ${dir}/pid) 2>/dev/null; rm -rf ${dir}`));
    const real = sh('command -v setsid').trim();
    sh(`printf '#!/bin/sh\\nsleep 1\\nexec ${real} "$@"\\n' >${dir}/slow-setsid && chmod +x ${dir}/slow-setsid`);
    sh(`printf '%s\\n' 'echo $$ >${dir}/pid; sleep 30 >/dev/null 2>&1 & echo started' > ${dir}/c`);
    // Only the watchdog's setsid is slow (busybox sh would run its own applet for a plain name).
    const line = execLine('r1', `${dir}/c`, 3).replaceAll('/tmp/.nk', dir).replace('setsid sh -c', `${dir}/slow-setsid sh -c`);
    assert.notEqual(line, execLine('r1', `${dir}/c`, 3).replaceAll('/tmp/.nk', dir));
    const t0 = Date.now();
    const out = execFileSync(argv0[0]!, [...argv0.slice(1), '-c', line], { encoding: 'latin1' });
    const r = parseExecReply(out, 'r1');
    assert.equal(r.timedOut, false);
    assert.equal(r.stdout.toString(), 'started\n');
    assert.ok(Date.now() - t0 < 2500, `the reply took ${Date.now() - t0} ms`);
    // The command's background job outlives the call (the examples leave servers running).
    assert.doesNotThrow(() => sh(`kill -0 -$(cat ${dir}/pid)`));
  });
}

test('a reply with kernel messages interleaved, even inside a base64 line, decodes exactly', () => {
  const out = Buffer.from(Array.from({ length: 300 }, (_, i) => (i * 37) & 0xff));
  let text = reply('k1', 0, out, Buffer.from('warn\n'));
  const cut = text.indexOf('\r\n', text.indexOf(marker('B', 'k1')) + 40) + 20;
  text = `${text.slice(0, cut)}[   12.345678] rtl8139: link up\r\n${text.slice(cut)}`;
  text = text.replace(marker('M', 'k1'), `[ 1234.5] random: crng init done\r\n${marker('M', 'k1')}`);
  const r = parseExecReply(text, 'k1');
  assert.deepEqual(r.stdout, out);
  assert.equal(r.stderr.toString(), 'warn\n');
});

test('a damaged or incomplete reply is reported, not silently accepted', () => {
  const good = reply('d1', 0, Buffer.from('hello world, this is output'), Buffer.alloc(0));
  const damaged = good.replace(/aGVs/, 'aG');
  assert.throws(() => parseExecReply(damaged, 'd1'), /damaged/);
  assert.throws(() => parseExecReply(good.slice(0, good.indexOf(marker('E', 'd1'))), 'd1'), /incomplete/);
  assert.throws(() => parseExecReply(good.replace(':0:27:0:0', ':x:27:0:0'), 'd1'), /bad reply header/);
});

test('the watchdog flag is read from the header', () => {
  const r = parseExecReply(reply('w1', 137, Buffer.alloc(0), Buffer.alloc(0), true), 'w1');
  assert.equal(r.timedOut, true);
  assert.equal(r.exitCode, 137);
});

test('output that contains marker-like text of another call does not end the reply early', () => {
  const fake = Buffer.from(`${marker('E', 'other')}\n${marker('B', 'x')}:1:2:3:0\n`);
  const text = reply('m1', 0, fake, Buffer.alloc(0));
  const m = execReplyPattern('m1').exec(`noise ${text} more`);
  assert.ok(m);
  assert.deepEqual(parseExecReply(m[0], 'm1').stdout, fake);
});

test('stripConsoleNoise and decodeBase64Section', () => {
  assert.equal(stripConsoleNoise('a\r\n[    0.000000] Linux version\r\nb\r\n'), 'a\nb\n');
  assert.equal(decodeBase64Section('aGVs\r\n[ 3.1] x\r\nbG8=\r\n').toString(), 'hello');
});

test('uploadLines: lines fit the tty, and replaying them in sh rebuilds the bytes', (t) => {
  const dir = sh('mktemp -d').trim();
  t.after(() => sh(`rm -rf ${dir}`));
  const data = Buffer.from(Array.from({ length: 9000 }, (_, i) => (i * 131 + 7) & 0xff));
  const lines = uploadLines(data, `${dir}/u`, (n) => `up${n}`);
  assert.ok(lines.length > 1);
  for (const l of lines) assert.ok(l.length <= MAX_LINE, `line of ${l.length}`);
  const acks = sh(lines.join('\n'));
  for (let i = 0; i < lines.length; i++) assert.match(acks, ackPattern(`up${i}`));
  assert.ok(!acks.match(/:[1-9]/), acks);
  assert.deepEqual(sh(`cat ${dir}/u | od -An -tx1 | tr -d ' \\n'`), data.toString('hex'));
  assert.deepEqual(chunkText(''), ['']);
});

test('through a MachineConsole: waitFor finds the reply while the "guest" echoes the command', async () => {
  const typed: string[] = [];
  const con = new MachineConsole((bytes) => { typed.push(Buffer.from(bytes).toString()); return bytes.length; });
  const feed = (s: string): void => { for (const b of Buffer.from(s, 'latin1')) con.guestByte(b); };
  const id = 'c1';
  const line = execLine(id, '/tmp/.nk/c', 10);
  con.write(`${line}\n`);
  const p = con.waitFor(execReplyPattern(id), { timeout: 2000 });
  // The guest echoes what was typed (as it would with echo on), then answers in pieces.
  feed(`${typed.join('')}\r\n`);
  const full = reply(id, 0, Buffer.from('ok\n'), Buffer.alloc(0));
  feed(full.slice(0, 25));
  await new Promise((r) => setImmediate(r));
  feed(full.slice(25));
  const r = parseExecReply(await p, id);
  assert.equal(r.stdout.toString(), 'ok\n');
  await assert.rejects(con.waitFor(marker('S', 'never'), { timeout: 50 }), { code: 'ERR_CONSOLE_TIMEOUT' });
});
