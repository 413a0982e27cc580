// Sharding a suite of vmTest files across machines: `node --test --test-shard=i/n` gives each
// shard a share of the files, so every vmTest of the suite runs in exactly one shard. Two shards
// of a 7-file suite (one file with two tests) run here; each test records that it ran.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

const testing = pathToFileURL(fileURLToPath(new URL('../../lib/testing/index.js', import.meta.url))).href;

test('two --test-shard shards run every vmTest exactly once, and the JUnit report lists them', (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'nkvm-shard-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const log = join(dir, 'ran.log');
  const names: string[] = [];
  for (let f = 0; f < 7; f++) {
    const tests = f === 3 ? [`file${f} a`, `file${f} b`] : [`file${f}`];
    names.push(...tests);
    writeFileSync(join(dir, `s${f}.test.mjs`), [
      `import { appendFileSync } from 'node:fs';`,
      `import { vmTest } from ${JSON.stringify(testing)};`,
      ...tests.map((n) => `vmTest(${JSON.stringify(n)}, async (scope) => { appendFileSync(${JSON.stringify(log)}, ${JSON.stringify(n)} + '\\t' + process.env.SHARD + '\\n'); });`),
    ].join('\n'));
  }
  // A `node --test` started from inside a test would report to this runner (NODE_TEST_CONTEXT).
  const env: NodeJS.ProcessEnv = { ...process.env, NODE_KVM_ARTIFACTS: join(dir, 'artifacts') };
  delete env.NODE_TEST_CONTEXT;
  for (const shard of ['1/2', '2/2']) {
    const junit = join(dir, `junit-${shard.replace('/', 'of')}.xml`);
    const r = spawnSync(process.execPath, ['--test', `--test-shard=${shard}`, '--test-reporter=junit', `--test-reporter-destination=${junit}`, ...Array.from({ length: 7 }, (_, f) => join(dir, `s${f}.test.mjs`))], {
      cwd: dir, encoding: 'utf8', env: { ...env, SHARD: shard }, timeout: 120_000,
    });
    assert.equal(r.status, 0, `${r.stdout}\n${r.stderr}`);
    assert.ok(existsSync(junit) && /<testcase /.test(readFileSync(junit, 'utf8')), `no JUnit testcases in ${junit}`);
  }
  const ran = readFileSync(log, 'utf8').trim().split('\n').map((l) => l.split('\t') as [string, string]);
  assert.deepEqual(ran.map(([n]) => n).sort(), [...names].sort(), 'every test ran exactly once');
  const shards = new Set(ran.map(([, s]) => s));
  assert.deepEqual([...shards].sort(), ['1/2', '2/2'], 'both shards ran a share');
});
