// Sharding under vitest: `vitest run --shard=i/n` gives each machine a share of the test files,
// as `node --test --test-shard` does (testing-shard.test.ts). Two shards of a 7-file suite whose
// files import node-kvm/testing run here through the vitest example's own install (its
// node_modules link this repository as `node-kvm`); each test records that it ran, and each
// shard writes a JUnit report.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const example = fileURLToPath(new URL('../../../examples/vitest/', import.meta.url));
const vitest = join(example, 'node_modules', 'vitest', 'vitest.mjs');

test('two vitest --shard shards run every test exactly once, with JUnit reports', (t) => {
  if (!existsSync(vitest)) {
    // scripts/setup.sh installs the example; CI runs it, so there a missing vitest is a failure.
    if (process.env.CI === 'true') assert.fail(`vitest is not installed in examples/vitest (run scripts/setup.sh): ${vitest}`);
    t.skip('SKIPPED: examples/vitest has no node_modules (cd examples/vitest && npm install)');
    return;
  }
  // Inside the example, so the files resolve `vitest` and `node-kvm/testing` from its node_modules.
  const dir = mkdtempSync(join(example, '.shard-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const log = join(dir, 'ran.log');
  const names: string[] = [];
  for (let f = 0; f < 7; f++) {
    const tests = f === 3 ? [`file${f} a`, `file${f} b`] : [`file${f}`];
    names.push(...tests);
    writeFileSync(join(dir, `s${f}.test.mjs`), [
      `import { appendFileSync } from 'node:fs';`,
      `import { expect, it } from 'vitest';`,
      `import { uniqueMac } from 'node-kvm/testing';`,
      ...tests.map((n) => `it(${JSON.stringify(n)}, () => { expect(uniqueMac()).toMatch(/^52:54:/); appendFileSync(${JSON.stringify(log)}, ${JSON.stringify(n)} + '\\t' + process.env.SHARD + '\\n'); });`),
    ].join('\n'));
  }
  writeFileSync(join(dir, 'vitest.config.mjs'), "export default { test: { include: ['*.test.mjs'] } };\n");
  const env: NodeJS.ProcessEnv = { ...process.env };
  delete env.NODE_TEST_CONTEXT;
  for (const shard of ['1/2', '2/2']) {
    const junit = join(dir, `junit-${shard.replace('/', 'of')}.xml`);
    const r = spawnSync(process.execPath, [vitest, 'run', '--root', dir, `--shard=${shard}`,
      '--reporter=default', '--reporter=junit', `--outputFile.junit=${junit}`], {
      cwd: dir, encoding: 'utf8', env: { ...env, SHARD: shard }, timeout: 120_000,
    });
    assert.equal(r.status, 0, `vitest --shard=${shard} failed:\n${r.stdout}\n${r.stderr}`);
    assert.ok(existsSync(junit) && /<testcase /.test(readFileSync(junit, 'utf8')), `no JUnit testcases in ${junit}`);
  }
  const ran = readFileSync(log, 'utf8').trim().split('\n').map((l) => l.split('\t') as [string, string]);
  assert.deepEqual(ran.map(([n]) => n).sort(), [...names].sort(), 'every test ran exactly once');
  assert.deepEqual([...new Set(ran.map(([, s]) => s))].sort(), ['1/2', '2/2'], 'both shards ran a share');
});
