// doctor(): the verdict on this host, and the logic on fixtures.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { doctor, hasCapability } from '../../lib/doctor.js';

test('on a kvm_pvm host: backend kvm_pvm, Linux needs the lab', async (t) => {
  if (!existsSync('/sys/module/kvm_pvm')) {
    t.diagnostic('this host is not kvm_pvm-backed; the fixture tests below cover the logic');
    return;
  }
  const r = await doctor();
  assert.ok(r.kvm.backends.includes('kvm_pvm'));
  assert.equal(r.canBootLinuxDirectly, false);
  assert.equal(r.checks.find((c) => c.id === 'linux-guests')?.status, 'warn');
  assert.match(r.checks.find((c) => c.id === 'linux-guests')?.fix ?? '', /node-kvm lab/);
});

function fixture(modules: string[], flags: string): { sysModule: string; cpuinfo: string; cleanup: () => void } {
  const root = mkdtempSync(join(tmpdir(), 'nkvm-doctor-test-'));
  for (const m of modules) mkdirSync(join(root, 'module', m), { recursive: true });
  mkdirSync(join(root, 'module'), { recursive: true });
  writeFileSync(join(root, 'cpuinfo'), `processor\t: 0\nflags\t\t: fpu sse2 ${flags}\n`);
  return { sysModule: join(root, 'module'), cpuinfo: join(root, 'cpuinfo'), cleanup: () => rmSync(root, { recursive: true, force: true }) };
}

test('kvm_intel + vmx + accessible device: boots Linux directly', async () => {
  const f = fixture(['kvm_intel'], 'vmx');
  try {
    // /dev/null stands in for an accessible character device
    const r = await doctor({ sysModule: f.sysModule, cpuinfo: f.cpuinfo, devKvm: '/dev/null' });
    assert.deepEqual(r.kvm, { present: true, accessible: true, backends: ['kvm_intel'] });
    assert.equal(r.cpu.vmx, true);
    assert.equal(r.canBootLinuxDirectly, true);
  } finally {
    f.cleanup();
  }
});

test('no VMX/SVM, kvm_pvm, or no device: lab needed', async () => {
  for (const [mods, flags, dev] of [[['kvm_amd'], '', '/dev/null'], [['kvm_pvm'], 'svm', '/dev/null'], [['kvm_amd'], 'svm', '/nonexistent/kvm']] as const) {
    const f = fixture([...mods], flags);
    try {
      const r = await doctor({ sysModule: f.sysModule, cpuinfo: f.cpuinfo, devKvm: dev });
      assert.equal(r.canBootLinuxDirectly, false, `${mods.join()} ${flags} ${dev}`);
      if (dev.startsWith('/nonexistent')) assert.equal(r.checks.find((c) => c.id === 'kvm-device')?.status, 'fail');
    } finally {
      f.cleanup();
    }
  }
});

test('capabilities are read from CapEff', () => {
  const root = mkdtempSync(join(tmpdir(), 'nkvm-cap-test-'));
  try {
    writeFileSync(join(root, 'status'), 'Name:\tnode\nCapEff:\t0000000000001000\n');
    assert.equal(hasCapability(12, join(root, 'status')), true);
    assert.equal(hasCapability(21, join(root, 'status')), false);
    assert.equal(hasCapability(12, join(root, 'missing')), false);
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
});
