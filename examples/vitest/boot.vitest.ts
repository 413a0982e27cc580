// node-kvm/testing under vitest: the same helpers as under node:test.
// Run, after `npm ci` at the repository's root: cd examples/vitest && npm install && npx vitest run
// (on a host whose KVM cannot boot Linux: node ../../bin/node-kvm.js lab -- npx vitest run)
import { describe, expect, it } from 'vitest';
import { bootVm } from 'node-kvm/testing';

describe('a VM under vitest', () => {
  it('runs a command and reports its output and exit code', async () => {
    const vm = await bootVm({ memory: '128M' });
    try {
      const r = await vm.exec('echo hello from $(uname -s); exit 7');
      expect(r.stdout.trim()).toBe('hello from Linux');
      expect(r.exitCode).toBe(7);
    } finally {
      await vm.close();
    }
  }, 300_000);
});
