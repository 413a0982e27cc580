// Register and struct fields on their way to KVM: numbers and bigints both accepted, anything
// that does not fit its field refused with ERR_INVALID_ARG naming the field (no truncation).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { u64, uint } from '../../lib/kvm/field-check.js';
import * as S from '../../lib/kvm/structs.js';
import type { Regs, Sregs } from '../../lib/kvm/regs.js';

function refused(fn: () => unknown, field: string): void {
  assert.throws(fn, (e: Error & { code?: string }) => {
    assert.equal(e.code, 'ERR_INVALID_ARG', e.message);
    assert.ok(e.message.startsWith(field), `message names ${field}: ${e.message}`);
    return true;
  });
}

test('u64/uint: range, sign, integer, type', () => {
  assert.equal(u64('rip', 0x1000), 0x1000n);
  assert.equal(u64('rip', 2n ** 64n - 1n), 2n ** 64n - 1n);
  assert.equal(u64('rip', Number.MAX_SAFE_INTEGER), BigInt(Number.MAX_SAFE_INTEGER));
  for (const bad of [2n ** 64n, 2n ** 70n, -1n, -1, 1.5, NaN, Infinity, 2 ** 53, '1', null, undefined, {}]) refused(() => u64('rip', bad), 'rip');
  assert.equal(uint('cs.selector', 0xffff, 16), 0xffff);
  assert.equal(uint('cs.selector', 8n, 16), 8);
  for (const bad of [1e9, 0x10000, -1, 0.5, 2n ** 16n, '8']) refused(() => uint('cs.selector', bad, 16), 'cs.selector');
});

let layout = true;
try {
  S.encodeRegs({ rax: 0n, rbx: 0n, rcx: 0n, rdx: 0n, rsi: 0n, rdi: 0n, rsp: 0n, rbp: 0n, r8: 0n, r9: 0n, r10: 0n, r11: 0n, r12: 0n, r13: 0n, r14: 0n, r15: 0n, rip: 0n, rflags: 2n });
} catch (e) {
  if ((e as { code?: string }).code !== 'ERR_NATIVE_MISSING') throw e;
  layout = false;
}

test('encodeRegs/mergeRegs and encodeSregs check every field by name', { skip: !layout && 'native addon not built (layouts come from it)' }, () => {
  const zero = Object.fromEntries(['rax', 'rbx', 'rcx', 'rdx', 'rsi', 'rdi', 'rsp', 'rbp', 'r8', 'r9', 'r10', 'r11', 'r12', 'r13', 'r14', 'r15', 'rip', 'rflags']
    .map((k) => [k, 0n])) as unknown as Regs;
  const merged = S.mergeRegs(zero, { rip: 0x1000, rsp: 0xffff_ffff_ffff_fff0n });
  assert.equal(merged.rip, 0x1000n);
  assert.deepEqual(S.decodeRegs(S.encodeRegs(merged)), merged);
  refused(() => S.mergeRegs(zero, { rip: 2n ** 70n }), 'rip');
  refused(() => S.mergeRegs(zero, { rax: -5 }), 'rax');
  refused(() => S.mergeRegs(zero, { rflags: 2.5 }), 'rflags');
  assert.throws(() => S.mergeRegs(zero, { eip: 1n } as never), { code: 'ERR_INVALID_ARG', message: /unknown register eip/ });

  const sregs = S.decodeSregs(new Uint8Array(512));
  const ok = S.mergeSregs(sregs, { cs: { base: 0x10000, selector: 0x1000 }, cr0: 1, gdt: { base: 0x500, limit: 0x27 } });
  const back = S.decodeSregs(S.encodeSregs(ok as Sregs));
  assert.equal(back.cs.base, 0x10000n);
  assert.equal(back.cs.selector, 0x1000);
  assert.equal(back.cr0, 1n);
  assert.equal(back.gdt.base, 0x500n);
  refused(() => S.encodeSregs(S.mergeSregs(sregs, { cs: { selector: 1e9 } })), 'cs.selector');
  refused(() => S.encodeSregs(S.mergeSregs(sregs, { ss: { base: -1n } })), 'ss.base');
  refused(() => S.encodeSregs(S.mergeSregs(sregs, { tr: { limit: 2 ** 32 } })), 'tr.limit');
  refused(() => S.encodeSregs(S.mergeSregs(sregs, { ds: { type: 256 } })), 'ds.type');
  refused(() => S.encodeSregs(S.mergeSregs(sregs, { gdt: { limit: 0x10000 } })), 'gdt.limit');
  refused(() => S.encodeSregs(S.mergeSregs(sregs, { cr3: 2n ** 64n })), 'cr3');
  refused(() => S.encodeSregs(S.mergeSregs(sregs, { efer: 0.5 })), 'efer');
  assert.throws(() => S.mergeSregs(sregs, { cr9: 1n } as never), { code: 'ERR_INVALID_ARG', message: /unknown sregs field cr9/ });
  refused(() => S.encodeMsrs([{ index: 0x10, data: 2n ** 64n }]), 'MSR 0x10 data');
  refused(() => S.encodeMsrs([{ index: -1, data: 0n }]), 'msrs[0].index');
  assert.ok(S.encodeMsrs([{ index: 0xc000_0080, data: 0x500 }]).length > 0);
});
