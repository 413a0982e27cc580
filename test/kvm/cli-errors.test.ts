// Bad input that reaches /dev/kvm: handles that fail to open close their fd at once, register
// fields out of range are refused by name, and `node-kvm run` exits 64 for a --cpus KVM
// refuses and 124 at --timeout, leaving no fd open.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { requireKvm } from '../helpers/kvm.js';
import { runCli, writeEndlessKernel } from '../helpers/cli.js';
import { Kvm } from '../../lib/kvm/index.js';
import { main } from '../../lib/cli/main.js';
import { Machine } from '../../lib/machine/index.js';
import { execFileSync } from 'node:child_process';

const fds = (): string[] => readdirSync('/proc/self/fd');

function captureIo(): { io: Parameters<typeof main>[1]; err: () => string } {
  let e = '';
  const sink = (add: (s: string) => void): Writable => new Writable({ write(c: Buffer, _enc, cb) { add(c.toString()); cb(); } });
  return { io: { stdout: sink(() => {}), stderr: sink((s) => (e += s)), env: {} }, err: () => e };
}

test('Kvm.open on a file that is not /dev/kvm: ENOTTY naming the fix, and the fd is closed at once', (t) => {
  if (!requireKvm(t)) return;
  const before = fds().length;
  for (let i = 0; i < 1000; i++) {
    assert.throws(() => Kvm.open('/dev/null'), (e: Error & { code?: string }) => {
      assert.equal(e.code, 'ENOTTY');
      assert.match(e.message, /\/dev\/null is not a KVM device/);
      return true;
    });
  }
  assert.equal(fds().length, before, '1000 failed opens keep no fd (no GC needed)');
});

test('setRegs/setSregs: number or bigint; out of range → ERR_INVALID_ARG naming the field; nothing changed', (t) => {
  if (!requireKvm(t)) return;
  using kvm = Kvm.open();
  using vm = kvm.createVm();
  using vcpu = vm.createVcpu(0);
  vcpu.setRegs({ rip: 0x1000, rsp: 0xffff_ffff_ffff_fff0n, rflags: 2 });
  const r = vcpu.getRegs();
  assert.equal(r.rip, 0x1000n);
  assert.equal(r.rsp, 0xffff_ffff_ffff_fff0n);
  const refused = (fn: () => void, field: string): void =>
    assert.throws(fn, (e: Error & { code?: string }) => e.code === 'ERR_INVALID_ARG' && e.message.startsWith(field), field);
  refused(() => vcpu.setRegs({ rip: 2n ** 70n }), 'rip');
  refused(() => vcpu.setRegs({ rax: -1 }), 'rax');
  refused(() => vcpu.setRegs({ rbx: 1.5 }), 'rbx');
  refused(() => vcpu.setRegs({ rcx: 2 ** 60 }), 'rcx');
  assert.equal(vcpu.getRegs().rip, 0x1000n, 'a refused update changes nothing');
  vcpu.setSregs({ cs: { base: 0x10000, selector: 0x1000 }, cr0: 0x10 });
  assert.equal(vcpu.getSregs().cs.base, 0x10000n);
  refused(() => vcpu.setSregs({ cs: { selector: 1e9 } }), 'cs.selector');
  refused(() => vcpu.setSregs({ ds: { base: -1n } }), 'ds.base');
  refused(() => vcpu.setSregs({ cr3: 2n ** 64n }), 'cr3');
  assert.equal(vcpu.getSregs().cs.selector, 0x1000);
  refused(() => vcpu.setMsrs([{ index: 0x10, data: -1n }]), 'MSR 0x10 data');
});

test('node-kvm run: --cpus above KVM\'s limit exits 64; --timeout ends a guest that never stops with 124', async (t) => {
  if (!requireKvm(t)) return;
  const dir = mkdtempSync(join(tmpdir(), 'nkvm-cli-kvm-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const spin = writeEndlessKernel(join(dir, 'spin.elf'), 'spin');
  const hlt = writeEndlessKernel(join(dir, 'hlt.elf'), 'hlt');
  const cpus = await runCli(['run', '--kernel', spin, '--cpus', '1000', '--console', 'none'], { killAfterMs: 60_000 });
  assert.equal(cpus.status, 64, cpus.stderr);
  assert.match(cpus.stderr, /\[ERR_INVALID_CPUS\]/);
  assert.doesNotMatch(cpus.stderr, /^\s+at /m);
  for (const k of [spin, hlt]) {
    const r = await runCli(['run', '--kernel', k, '--timeout', '2', '--console', `file:${join(dir, 'console.log')}`], { killAfterMs: 90_000 });
    assert.equal(r.status, 124, r.stderr);
    assert.match(r.stderr, /timed out after 2 s .*\[ERR_TIMEOUT\]/);
    // Generous for a loaded host: the point is that it ends by itself, not how fast.
    assert.ok(r.ms < 60_000, `exited ${r.ms} ms after start`);
  }
});

test('node-kvm run in-process: a refused --cpus and a timed-out run leave no fd open', async (t) => {
  if (!requireKvm(t)) return;
  const dir = mkdtempSync(join(tmpdir(), 'nkvm-cli-kvm-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const spin = writeEndlessKernel(join(dir, 'spin.elf'), 'spin');
  const log = join(dir, 'console.log');
  const before = fds();
  let c = captureIo();
  assert.equal(await main(['run', '--kernel', spin, '--cpus', '1000', '--console', `file:${log}`], c.io), 64, c.err());
  c = captureIo();
  assert.equal(await main(['run', '--kernel', spin, '--timeout', '1', '--console', `file:${log}`, '--net', 'switch:cli-kvm'], c.io), 124, c.err());
  assert.equal(readFileSync(log).length, 0);
  assert.deepEqual(fds(), before);
});

test('Machine.create refusing its options or its files leaves no fd open', async (t) => {
  if (!requireKvm(t)) return;
  const dir = mkdtempSync(join(tmpdir(), 'nkvm-create-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const spin = writeEndlessKernel(join(dir, 'spin.elf'), 'spin');
  const fifo = join(dir, 'fifo');
  execFileSync('mkfifo', [fifo]);
  const before = fds();
  const cases: Array<[Parameters<typeof Machine.create>[0], string]> = [
    [{ kernel: fifo }, 'ERR_FILE'],
    [{ kernel: dir }, 'ERR_FILE'],
    [{ kernel: spin, initrd: '/dev/zero' }, 'ERR_FILE'],
    [{ kernel: spin, cpus: 1000 }, 'ERR_INVALID_CPUS'],
    [{ kernel: spin, memory: 'abc' }, 'ERR_INVALID_MEMORY'],
    [{ kernel: new Uint8Array(4096).fill(0x90) }, 'ERR_KERNEL_FORMAT'],
    [{ kernel: spin, kvmPath: '/dev/null' }, 'ENOTTY'],
  ];
  for (const [opts, code] of cases) {
    await assert.rejects(Machine.create(opts), (e: Error & { code?: string }) => e.code === code, `${JSON.stringify(opts)} → ${code}`);
  }
  assert.deepEqual(fds(), before);
});
