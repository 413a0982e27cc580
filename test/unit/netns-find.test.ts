// findCommand: a command found in $PATH is remembered per $PATH (NetNs looks `ip` up for every
// command it runs, on the main thread); a command not found is looked up again next time.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { chmodSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { findCommand } from '../../lib/net/netns.js';

test('findCommand remembers hits per PATH and retries misses', (t) => {
  const root = mkdtempSync(join(tmpdir(), 'nkvm-find-'));
  const savedPath = process.env.PATH;
  t.after(() => {
    process.env.PATH = savedPath;
    rmSync(root, { recursive: true, force: true });
  });
  const name = `nkvm-probe-${process.pid}`;
  const make = (dir: string): string => {
    const p = join(root, dir, name);
    writeFileSync(p, '#!/bin/sh\n', { flag: 'w' });
    chmodSync(p, 0o755);
    return p;
  };
  const a = mkdtempSync(join(root, 'a')), b = mkdtempSync(join(root, 'b'));
  process.env.PATH = a;
  assert.equal(findCommand(name), undefined);
  const inA = make(a.slice(root.length + 1));
  assert.equal(findCommand(name), inA, 'a miss is not remembered');
  rmSync(inA);
  assert.equal(findCommand(name), inA, 'a hit is remembered');
  const inB = make(b.slice(root.length + 1));
  process.env.PATH = `${b}:${a}`;
  assert.equal(findCommand(name), inB, 'another PATH is looked up afresh');
});
