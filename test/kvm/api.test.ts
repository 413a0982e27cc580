// Selftests-style checks of the low-level binding against the real /dev/kvm: limits, errno
// codes, stats, handle lifecycle and argument validation. Assertions are our own.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { closeSync, readFileSync, readSync } from 'node:fs';
import { totalmem } from 'node:os';
import { requireKvm } from '../helpers/kvm.js';
import { Kvm, constants, KvmError } from '../../lib/index.js';
import { readKvmStats } from '../../lib/kvm/stats.js';
import { native } from '../../lib/native.js';

function codeOf(fn: () => unknown): string {
  try {
    fn();
  } catch (e) {
    const code = (e as { code?: unknown }).code;
    assert.equal(typeof code, 'string', `error without a code: ${String(e)}`);
    return code as string;
  }
  assert.fail('expected a throw');
}

function kvmErrorOf(fn: () => unknown): KvmError {
  try {
    fn();
  } catch (e) {
    assert.ok(e instanceof KvmError, `expected a KvmError, got ${String(e)}`);
    return e;
  }
  assert.fail('expected a throw');
}

const MiB = 1024 * 1024;

test('API version is 12 and basic capabilities are reported', (t) => {
  if (!requireKvm(t)) return;
  using kvm = Kvm.open();
  assert.equal(kvm.apiVersion, 12);
  assert.ok(kvm.checkExtension(constants.KVM_CAP_USER_MEMORY!) > 0);
  assert.ok(kvm.checkExtension(constants.KVM_CAP_MAX_VCPUS!) >= 1);
  const cpuid = kvm.getSupportedCpuid();
  assert.ok(cpuid.some((e) => e.function === 0), 'CPUID leaf 0 supported');
  assert.ok(kvm.getMsrIndexList().length > 0);
});

test('a VM can create exactly KVM_CAP_MAX_VCPUS vCPUs; the next one fails with a code', (t) => {
  if (!requireKvm(t)) return;
  using kvm = Kvm.open();
  const max = kvm.checkExtension(constants.KVM_CAP_MAX_VCPUS!);
  const maxId = kvm.checkExtension(constants.KVM_CAP_MAX_VCPU_ID!) || max;
  t.diagnostic(`KVM_CAP_MAX_VCPUS=${max} KVM_CAP_MAX_VCPU_ID=${maxId}`);
  using vm = kvm.createVm();
  for (let id = 0; id < max; id++) vm.createVcpu(id);
  if (maxId > max) {
    // A valid id, but one vCPU too many: only the kernel's count can refuse it.
    const err = kvmErrorOf(() => vm.createVcpu(max));
    assert.equal(err.code, 'EINVAL');
    assert.equal(err.syscall, 'KVM_CREATE_VCPU');
  } else {
    assert.ok(['EINVAL', 'ERR_INVALID_ARG', 'ERR_OUT_OF_RANGE'].includes(codeOf(() => vm.createVcpu(max))));
  }
});

test('vCPU id: duplicate -> EEXIST, past KVM_CAP_MAX_VCPU_ID -> EINVAL, malformed -> ERR_INVALID_ARG', (t) => {
  if (!requireKvm(t)) return;
  using kvm = Kvm.open();
  using vm = kvm.createVm();
  vm.createVcpu(0);
  const dup = kvmErrorOf(() => vm.createVcpu(0));
  assert.equal(dup.code, 'EEXIST');
  assert.equal(dup.syscall, 'KVM_CREATE_VCPU');
  // An id past KVM_CAP_MAX_VCPU_ID reaches the kernel; malformed ids are refused before it.
  const maxId = kvm.checkExtension(constants.KVM_CAP_MAX_VCPU_ID!);
  const range = kvmErrorOf(() => vm.createVcpu(maxId));
  assert.equal(range.code, 'EINVAL');
  assert.equal(range.syscall, 'KVM_CREATE_VCPU');
  for (const bad of [-1, 1.5, Number.NaN]) assert.equal(codeOf(() => vm.createVcpu(bad)), 'ERR_INVALID_ARG', `createVcpu(${bad})`);
});

test('memory slots: overlap -> EEXIST, unaligned -> EINVAL (KVM_SET_USER_MEMORY_REGION), malformed -> ERR_INVALID_ARG', (t) => {
  if (!requireKvm(t)) return;
  using kvm = Kvm.open();
  using vm = kvm.createVm();
  vm.createMemoryRegion({ slot: 0, guestPhysAddr: 0, size: 2 * MiB });
  const overlap = kvmErrorOf(() => vm.createMemoryRegion({ slot: 1, guestPhysAddr: MiB, size: 2 * MiB }));
  assert.equal(overlap.code, 'EEXIST');
  assert.equal(overlap.syscall, 'KVM_SET_USER_MEMORY_REGION');
  // A non-overlapping slot still works after the refusal.
  const r = vm.createMemoryRegion({ slot: 1, guestPhysAddr: 4 * MiB, size: MiB });
  assert.equal(r.bytes.length, MiB);
  // Page-unaligned values are the kernel's to refuse; malformed numbers never reach it.
  for (const [what, spec] of [
    ['unaligned size', { slot: 2, guestPhysAddr: 8 * MiB, size: 4096 + 1 }],
    ['unaligned address', { slot: 2, guestPhysAddr: 8 * MiB + 512, size: 4096 }],
  ] as const) {
    const e = kvmErrorOf(() => vm.createMemoryRegion(spec));
    assert.equal(e.code, 'EINVAL', what);
    assert.equal(e.syscall, 'KVM_SET_USER_MEMORY_REGION', what);
  }
  for (const [what, spec] of [
    ['zero size', { slot: 2, guestPhysAddr: 8 * MiB, size: 0 }],
    ['negative size', { slot: 2, guestPhysAddr: 8 * MiB, size: -4096 }],
    ['fractional size', { slot: 2, guestPhysAddr: 8 * MiB, size: 4096.5 }],
    ['negative address', { slot: 2, guestPhysAddr: -4096, size: 4096 }],
  ] as const) {
    assert.equal(codeOf(() => vm.createMemoryRegion(spec)), 'ERR_INVALID_ARG', what);
  }
  // Nothing of the refused attempts stayed behind: slot 2 is still free.
  assert.equal(vm.createMemoryRegion({ slot: 2, guestPhysAddr: 8 * MiB, size: 4096 }).bytes.length, 4096);
});

test('guest RAM is 2 MiB-aligned private memory advised for huge pages and kept out of forks', (t) => {
  if (!requireKvm(t)) return;
  using kvm = Kvm.open();
  using vm = kvm.createVm();
  const region = vm.createMemoryRegion({ slot: 0, guestPhysAddr: 0, size: 6 * MiB });
  const addr = native().address(region.bytes.buffer as ArrayBuffer);
  assert.equal(addr % BigInt(2 * MiB), 0n, `RAM at 0x${addr.toString(16)}`);
  // smaps: the mapping that holds the RAM, and its VmFlags (hg: MADV_HUGEPAGE, dc: MADV_DONTFORK;
  // no "sh": not shared).
  const blocks = readFileSync('/proc/self/smaps', 'utf8').split(/\n(?=[0-9a-f]+-[0-9a-f]+ )/);
  const block = blocks.find((b) => {
    const [lo, hi] = b.slice(0, b.indexOf(' ')).split('-').map((x) => BigInt(`0x${x}`));
    return lo! <= addr && addr < hi!;
  });
  assert.ok(block !== undefined, 'the RAM mapping is in /proc/self/smaps');
  const flags = /^VmFlags:(.*)$/m.exec(block)?.[1]?.trim().split(/\s+/) ?? [];
  for (const f of ['hg', 'dc']) assert.ok(flags.includes(f), `VmFlags ${flags.join(' ')} lack ${f}`);
  assert.ok(!flags.includes('sh'), `VmFlags ${flags.join(' ')}: shared`);
});

test('memory larger than the host allows fails with a code, not a crash', (t) => {
  if (!requireKvm(t)) return;
  using kvm = Kvm.open();
  using vm = kvm.createVm();
  // 2^52 bytes: beyond any host's RAM and past the 4 GiB a single region may span.
  assert.equal(codeOf(() => vm.createMemoryRegion({ slot: 0, guestPhysAddr: 0, size: 2 ** 52 })), 'ERR_REGION_TOO_LARGE');
  // Within the per-region cap but more than this host has, if the host is that small.
  const host = totalmem();
  if (host < 4 * 1024 * MiB) {
    const size = Math.ceil((host + 1) / 4096) * 4096;
    assert.equal(codeOf(() => vm.createMemoryRegion({ slot: 0, guestPhysAddr: 0, size })), 'ERR_MEMORY_TOO_LARGE');
  }
});

test('KVM_RUN without memory ends in a failure, never a hang', { timeout: 20_000 }, (t) => {
  if (!requireKvm(t)) return;
  using kvm = Kvm.open();
  using vm = kvm.createVm();
  using vcpu = vm.createVcpu(0);
  const exit = vcpu.run();
  // This binding reports a failed KVM_RUN as a 'run-error' exit carrying the errno code.
  const outcome = exit.reason === 'run-error' ? `run-error ${exit.code}` : exit.reason;
  assert.ok(['internal-error', 'shutdown', 'fail-entry', 'run-error'].includes(exit.reason), `unexpected exit ${outcome}`);
  if (exit.reason === 'run-error') assert.match(exit.code, /^E[A-Z0-9]+$/);
  t.diagnostic(`KVM_RUN with no memory: ${outcome}`);
});

test('binary stats fd: header sane, descriptors and data inside the file', (t) => {
  if (!requireKvm(t)) return;
  using kvm = Kvm.open();
  using vm = kvm.createVm();
  const fd = vm.getStatsFd();
  try {
    const h = new Uint8Array(24);
    assert.equal(readSync(fd, h, 0, 24, 0), 24);
    const v = new DataView(h.buffer);
    const [flags, nameSize, numDesc, idOffset, descOffset, dataOffset] =
      [0, 4, 8, 12, 16, 20].map((o) => v.getUint32(o, true)) as [number, number, number, number, number, number];
    t.diagnostic(`flags=${flags} name_size=${nameSize} num_desc=${numDesc} id@${idOffset} desc@${descOffset} data@${dataOffset}`);
    assert.ok(nameSize > 0);
    assert.ok(numDesc > 0);
    assert.ok(idOffset >= 24);
    assert.ok(descOffset >= idOffset + nameSize);
    const descSize = 16 + nameSize; // struct kvm_stats_desc + name
    assert.ok(dataOffset >= descOffset + numDesc * descSize);
    // The id names the VM ("kvm-<pid>").
    const id = new Uint8Array(nameSize);
    assert.equal(readSync(fd, id, 0, nameSize, idOffset), nameSize);
    assert.match(Buffer.from(id).toString('latin1').replace(/\0.*$/s, ''), /^kvm-\d+/);
    // Every descriptor is readable and points at data that is readable too.
    const descs = new Uint8Array(numDesc * descSize);
    assert.equal(readSync(fd, descs, 0, descs.length, descOffset), descs.length);
    const dv = new DataView(descs.buffer);
    let dataEnd = 0;
    const names: string[] = [];
    for (let i = 0; i < numDesc; i++) {
      const size = dv.getUint16(i * descSize + 6, true);
      const offset = dv.getUint32(i * descSize + 8, true);
      dataEnd = Math.max(dataEnd, offset + 8 * size);
      names.push(Buffer.from(descs.subarray(i * descSize + 16, (i + 1) * descSize)).toString('latin1').replace(/\0.*$/s, ''));
    }
    assert.ok(names.every((n) => /^[a-z][a-z0-9_]*$/.test(n)), `odd stat names: ${names.join(', ')}`);
    // The library's reader agrees (its struct layout comes from the shim; g++ once got it wrong).
    assert.deepEqual([...readKvmStats(fd).values.keys()].sort(), [...names].sort());
    const data = new Uint8Array(dataEnd);
    assert.equal(readSync(fd, data, 0, dataEnd, dataOffset), dataEnd);
  } finally {
    closeSync(fd);
  }
});

test('coalesced zones: register, unregister (KVM_UNREGISTER_COALESCED_MMIO), malformed -> ERR_INVALID_ARG', (t) => {
  if (!requireKvm(t)) return;
  using kvm = Kvm.open();
  using vm = kvm.createVm();
  if (vm.checkExtension(constants.KVM_CAP_COALESCED_MMIO!) <= 0) {
    t.diagnostic('KVM_CAP_COALESCED_MMIO not supported here');
    return;
  }
  vm.registerCoalesced({ addr: 0xc000_003c, size: 4, pio: false });
  vm.unregisterCoalesced({ addr: 0xc000_003c, size: 4, pio: false });
  // Each zone is a device on KVM's MMIO bus, which holds at most 1000 (NR_IOBUS_DEVS): 1,100
  // rounds only succeed if unregistering really removes it.
  for (let i = 0; i < 1100; i++) {
    vm.registerCoalesced({ addr: 0xc000_003c, size: 4, pio: false });
    vm.unregisterCoalesced({ addr: 0xc000_003c, size: 4, pio: false });
  }
  assert.equal(codeOf(() => vm.unregisterCoalesced({ addr: -1, size: 4, pio: false })), 'ERR_INVALID_ARG');
  assert.equal(codeOf(() => vm.registerCoalesced({ addr: 0x1000, size: 0, pio: false })), 'ERR_INVALID_ARG');
});

test('close() is idempotent; use after close throws ERR_KVM_CLOSED', (t) => {
  if (!requireKvm(t)) return;
  const kvm = Kvm.open();
  const vm = kvm.createVm();
  const region = vm.createMemoryRegion({ slot: 0, guestPhysAddr: 0, size: MiB });
  const vcpu = vm.createVcpu(0);
  assert.equal(region.bytes.length, MiB);
  vcpu.close();
  vcpu.close();
  assert.equal(codeOf(() => vcpu.run()), 'ERR_KVM_CLOSED');
  assert.equal(codeOf(() => vcpu.getRegs()), 'ERR_KVM_CLOSED');
  vm.close();
  vm.close();
  assert.equal(codeOf(() => vm.createVcpu(1)), 'ERR_KVM_CLOSED');
  assert.equal(codeOf(() => vm.createMemoryRegion({ slot: 1, guestPhysAddr: 2 * MiB, size: MiB })), 'ERR_KVM_CLOSED');
  kvm.close();
  kvm.close();
  assert.equal(codeOf(() => kvm.createVm()), 'ERR_KVM_CLOSED');
  assert.equal(codeOf(() => kvm.checkExtension(constants.KVM_CAP_USER_MEMORY!)), 'ERR_KVM_CLOSED');
});

test('Kvm.open on a missing path: ENOENT with a message naming the fix', (t) => {
  if (!requireKvm(t)) return;
  let err: unknown;
  try {
    Kvm.open('/dev/does-not-exist-kvm');
  } catch (e) {
    err = e;
  }
  assert.ok(err instanceof Error, 'open of a missing path must throw');
  assert.equal((err as { code?: string }).code, 'ENOENT');
  assert.match(err.message, /does-not-exist-kvm/);
  assert.match(err.message, /modprobe|kvm_intel|kvm_amd|enable|virtuali[sz]ation/i);
});
