// Eight small VMs at once in one process: boot, exec, close, and no file descriptor leaks.
//   node --test dist/examples/parallel.test.js        (VMS=N for another number)
import assert from 'node:assert/strict';
import { readdirSync } from 'node:fs';
import { test } from 'node:test';
import { InvalidArgumentError } from '../lib/errors.js';
import { bootVm, type TestVm } from '../lib/testing/index.js';

const openFds = (): number => readdirSync('/proc/self/fd').length;
const count = Number(process.env.VMS ?? 8);
// A typo must not turn into zero VMs and a test that passes without booting any.
if (!Number.isInteger(count) || count < 1 || count > 64) throw new InvalidArgumentError(`VMS must be an integer 1..64, got ${JSON.stringify(process.env.VMS)}`);

test(`${count} VMs boot, exec and close in parallel`, { timeout: 900_000 }, async () => {
  const before = openFds();
  const vms: TestVm[] = [];
  try {
    const booted = await Promise.all(Array.from({ length: count }, (_, i) => bootVm({ name: `p${i}`, memory: '128M', timeout: 600_000 })));
    vms.push(...booted);
    const outs = await Promise.all(vms.map((vm, i) => vm.execOk(`echo vm-${i} $(( ${i} * 6 ))`, { timeout: 120_000 })));
    outs.forEach((r, i) => assert.equal(r.stdout, `vm-${i} ${i * 6}\n`));
  } finally {
    await Promise.all(vms.map((vm) => vm.close()));
  }
  assert.equal(openFds(), before, 'every VM fd is closed');
});
