// The ErrorCode union (lib/error-codes.ts) is complete: every 'ERR_*' literal in lib/ and
// native/ is one of its members (a new code cannot be thrown without being listed and
// described), and every member is still thrown somewhere (no stale entries).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { NodeKvmError, InvalidArgumentError, KvmError } from '../../lib/index.js';

const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..', '..');

function sources(dir: string, exts: string[]): string[] {
  const out: string[] = [];
  for (const e of readdirSync(join(root, dir), { withFileTypes: true })) {
    const p = join(dir, e.name);
    if (e.isDirectory()) out.push(...sources(p, exts));
    else if (exts.some((x) => e.name.endsWith(x))) out.push(p);
  }
  return out;
}

/** The union's members, each with the TSDoc comment before it. */
function unionMembers(): Map<string, string> {
  const text = readFileSync(join(root, 'lib', 'error-codes.ts'), 'utf8');
  const members = new Map<string, string>();
  for (const m of text.matchAll(/(?:\/\*\*(.*?)\*\/\s*)?\|\s*'(ERR_[A-Z0-9_]+)'/gs)) members.set(m[2]!, (m[1] ?? '').trim());
  return members;
}
const ERROR_CODES = unionMembers();

function literals(): Map<string, string[]> {
  const found = new Map<string, string[]>();
  for (const f of [...sources('lib', ['.ts']), ...sources('native', ['.cc', '.h'])]) {
    if (f === join('lib', 'error-codes.ts')) continue;
    for (const m of readFileSync(join(root, f), 'utf8').matchAll(/['"](ERR_[A-Z0-9_]+)['"]/g)) {
      found.set(m[1]!, [...(found.get(m[1]!) ?? []), f]);
    }
  }
  return found;
}

test('every ERR_* literal in lib/ and native/ is in the ErrorCode union', () => {
  const found = literals();
  assert.ok(found.size > 50, `expected many codes, found ${found.size}`);
  const missing = [...found].filter(([c]) => !ERROR_CODES.has(c)).map(([c, files]) => `${c} (${[...new Set(files)].join(', ')})`);
  assert.deepEqual(missing, [], 'add these to lib/error-codes.ts with a description');
});

test('every ErrorCode member is still thrown somewhere, and described', () => {
  const found = literals();
  const stale = [...ERROR_CODES.keys()].filter((c) => !found.has(c));
  assert.deepEqual(stale, [], 'remove these from lib/error-codes.ts, or throw them');
  for (const [code, what] of ERROR_CODES) assert.ok(what.length > 10, `${code} needs a description`);
});

test('errors carry their code and class name', () => {
  const e = new InvalidArgumentError('memory must be positive', 'ERR_INVALID_MEMORY');
  assert.ok(e instanceof NodeKvmError);
  assert.equal(e.code, 'ERR_INVALID_MEMORY');
  assert.equal(e.name, 'InvalidArgumentError');
  const k = new KvmError('EEXIST', 17, 'KVM_CREATE_VCPU');
  assert.equal(k.code, 'EEXIST');
  assert.match(k.message, /KVM_CREATE_VCPU failed: EEXIST/);
});
