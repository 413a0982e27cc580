// NODE_KVM_DEBUG=1, scripted: a test file whose vmTest (a fork of a template, as
// `vmTest(name, { template }, fn)` gives it) fails runs in a child process; it prints
// a `node-kvm attach <socket>` command; `node-kvm attach` (another child, stdin a pipe) runs a
// command in the kept guest and sees its output, then detaches with Ctrl-A x; the failed test
// then ends (exit status 1, its failure reported); attaching again says the VM has ended.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { requireKvm } from '../helpers/kvm.js';
import { repoRoot } from '../helpers/cli.js';
import { defaultImage } from './helpers.js';

const testing = pathToFileURL(fileURLToPath(new URL('../../lib/testing/index.js', import.meta.url))).href;

/** Collect a stream's text; `until(re)` resolves with the first match (rejects after `ms`). */
function collect(child: ChildProcess, which: 'stdout' | 'stderr'): { text: () => string; until: (re: RegExp, ms: number) => Promise<RegExpExecArray> } {
  let text = '';
  const waiters: Array<() => void> = [];
  child[which]!.on('data', (d: Buffer) => {
    text += d.toString();
    for (const w of waiters.splice(0)) w();
  });
  const until = (re: RegExp, ms: number): Promise<RegExpExecArray> => new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`no ${re} on ${which} within ${ms} ms; got:\n${text}`)), ms);
    const check = (): void => {
      const m = re.exec(text);
      if (m !== null) {
        clearTimeout(timer);
        resolve(m);
      } else {
        waiters.push(check);
      }
    };
    check();
  });
  return { text: () => text, until };
}

const exited = (c: ChildProcess): Promise<number | null> => new Promise((r) => {
  if (c.exitCode !== null) r(c.exitCode);
  else c.once('exit', (code) => r(code));
});

test('a failing vmTest under NODE_KVM_DEBUG=1 keeps its VM; node-kvm attach runs a command in it and detaches', async (t) => {
  if (!requireKvm(t)) return;
  await defaultImage();
  const dir = mkdtempSync(join(tmpdir(), 'nkvm-debug-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const file = join(dir, 'failing.test.mjs');
  writeFileSync(file, [
    `import { after } from 'node:test';`,
    `import { vmTemplate, vmTest } from ${JSON.stringify(testing)};`,
    `const template = await vmTemplate({ memory: '256M', setup: (vm) => vm.execOk('echo from-setup > /root/setup') });`,
    `after(() => template.close());`,
    `vmTest('fails on purpose', { template }, async (vm) => {`,
    `  await vm.execOk('echo left-by-the-test > /root/mark');`,
    `  throw new Error('failing on purpose');`,
    `});`,
  ].join('\n'));
  // NODE_TEST_CONTEXT would make the child report to this runner instead of printing.
  const env: NodeJS.ProcessEnv = { ...process.env, NODE_KVM_DEBUG: '1', NODE_KVM_DEBUG_TIMEOUT: '600', NODE_KVM_ARTIFACTS: join(dir, 'artifacts') };
  delete env.NODE_TEST_CONTEXT;
  const failing = spawn(process.execPath, [file], {
    env,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  t.after(() => { if (failing.exitCode === null) failing.kill('SIGKILL'); });
  const fErr = collect(failing, 'stderr');
  const fOut = collect(failing, 'stdout');
  const [, sock] = await fErr.until(/node-kvm attach (\S+)/, 400_000);
  assert.match(fErr.text(), /Ctrl-A x detaches/);

  const attach = spawn(process.execPath, [join(repoRoot(), 'bin', 'node-kvm.js'), 'attach', sock!], { stdio: ['pipe', 'pipe', 'pipe'] });
  t.after(() => { if (attach.exitCode === null) attach.kill('SIGKILL'); });
  const aOut = collect(attach, 'stdout');
  const aErr = collect(attach, 'stderr');
  await aOut.until(/attached to vm \S+; Ctrl-A x detaches/, 60_000);
  attach.stdin!.write('cat /root/setup /root/mark; echo "sum=$((20+22))"\n');
  await aOut.until(/from-setup[\s\S]*left-by-the-test[\s\S]*sum=42/, 120_000);
  attach.stdin!.write('\x01x');
  assert.equal(await exited(attach), 0, aErr.text());
  assert.match(aErr.text(), /\[node-kvm\] detached/);

  // The detach ends the failed test: it reports the failure and the process exits 1.
  assert.equal(await exited(failing), 1, `${fOut.text()}\n${fErr.text()}`);
  assert.match(fOut.text(), /failing on purpose/);
  assert.match(fOut.text(), /node-kvm artifacts/);

  const again = spawn(process.execPath, [join(repoRoot(), 'bin', 'node-kvm.js'), 'attach', sock!], { stdio: ['pipe', 'pipe', 'pipe'] });
  const gErr = collect(again, 'stderr');
  assert.equal(await exited(again), 1);
  assert.match(gErr.text(), /no VM is listening on .* its test has ended.*\[ERR_ATTACH\]/s);
});
