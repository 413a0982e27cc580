// Machine.create refuses bad inputs with a coded error before the VM runs, and leaves nothing
// open behind (no /dev/kvm, VM or vCPU fd). The cpus limit is KVM's own, so this needs /dev/kvm.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync } from 'node:fs';
import { totalmem } from 'node:os';
import { Kvm } from '../../lib/kvm/kvm.js';
import { constants } from '../../lib/kvm/constants.js';
import { Machine, type MachineOptions } from '../../lib/machine/index.js';
import { requireKvm } from '../helpers/kvm.js';
import { MiB, makeBzImage, makeElf } from '../unit/boot-fixtures.js';

const openFds = (): number => readdirSync('/proc/self/fd').length;

async function createError(opts: MachineOptions): Promise<{ code: string; message: string }> {
  const before = openFds();
  try {
    const m = await Machine.create(opts);
    await m.close();
  } catch (e) {
    assert.equal(openFds(), before, 'a failed create leaves no fd open');
    return { code: (e as { code?: string }).code ?? 'no code', message: (e as Error).message };
  }
  return { code: 'no error', message: '' };
}

function kvmVcpuLimit(): number {
  const kvm = Kvm.open();
  try {
    return kvm.checkExtension(constants.KVM_CAP_MAX_VCPUS!) || kvm.checkExtension(constants.KVM_CAP_NR_VCPUS!) || 1;
  } finally {
    kvm.close();
  }
}

const kernel = makeBzImage();

test('cpus above the KVM limit: ERR_INVALID_CPUS naming the limit', async (t) => {
  if (!requireKvm(t)) return;
  const limit = Math.min(kvmVcpuLimit(), 254);
  const e = await createError({ kernel, cpus: limit + 1, memory: '32M' });
  assert.equal(e.code, 'ERR_INVALID_CPUS');
  assert.match(e.message, new RegExp(`1 to ${limit}\\b`));
  assert.equal((await createError({ kernel, cpus: 0, memory: '32M' })).code, 'ERR_INVALID_CPUS');
});

test('memory below 16 MiB or above the host\'s: coded errors', async (t) => {
  if (!requireKvm(t)) return;
  assert.equal((await createError({ kernel, memory: '8M' })).code, 'ERR_INVALID_MEMORY');
  const gib = Math.ceil(totalmem() / 1024 ** 3) + 1;
  assert.equal((await createError({ kernel, memory: `${gib}G` })).code, 'ERR_MEMORY_TOO_LARGE');
});

test('unbootable kernels: another architecture, truncated bzImage', async (t) => {
  if (!requireKvm(t)) return;
  const arm64 = makeElf({ machine: 183, entry: 0x1000000, segments: [{ paddr: 0x1000000, data: new Uint8Array(64) }] });
  assert.equal((await createError({ kernel: arm64, memory: '32M' })).code, 'ERR_KERNEL_ARCH');
  assert.equal((await createError({ kernel: kernel.subarray(0, kernel.length - 4096), memory: '32M' })).code, 'ERR_KERNEL_TRUNCATED');
});

test('an initrd that does not fit in RAM; a cmdline longer than the kernel accepts', async (t) => {
  if (!requireKvm(t)) return;
  assert.equal((await createError({ kernel, memory: '16M', initrd: new Uint8Array(16 * MiB) })).code, 'ERR_INITRD_TOO_LARGE');
  assert.equal((await createError({ kernel, memory: '32M', initrd: new Uint8Array(20 * MiB) })).code, 'ERR_INITRD_TOO_LARGE');
  const e = await createError({ kernel: makeBzImage({ cmdlineSize: 255 }), memory: '32M', cmdline: 'z'.repeat(256) });
  assert.equal(e.code, 'ERR_CMDLINE_TOO_LONG');
  assert.match(e.message, /at most 255/);
});

test('a valid machine is created and closed without leaking fds (control for the checks above)', async (t) => {
  if (!requireKvm(t)) return;
  const before = openFds();
  const m = await Machine.create({ kernel, memory: '32M', cmdline: 'z'.repeat(255) });
  assert.equal(m.state, 'created');
  await m.close();
  assert.equal(openFds(), before);
});
