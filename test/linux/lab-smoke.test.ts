// Runs INSIDE the nested lab (the linux tier is started there by the test runner on hosts that
// cannot boot Linux directly): checks the environment the other linux tests rely on.
// On a host with VMX/SVM the tier runs directly, and the lab-specific checks do not apply.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { accessSync, constants, existsSync, statSync } from 'node:fs';
import { requireKvm } from '../helpers/kvm.js';

const inLab = process.env.NODE_KVM_LAB === '1';

test('/dev/kvm is a usable character device', (t) => {
  if (!requireKvm(t)) return;
  assert.ok(statSync('/dev/kvm').isCharacterDevice());
  accessSync('/dev/kvm', constants.R_OK | constants.W_OK);
});

test('inside the lab: kvm_amd backs /dev/kvm and NODE_KVM_LAB=1 is set', (t) => {
  if (!inLab) {
    t.diagnostic('not inside the lab (NODE_KVM_LAB unset): the linux tier runs directly on this host');
    assert.ok(existsSync('/sys/module/kvm_intel') || existsSync('/sys/module/kvm_amd'), 'outside the lab the host must have kvm_intel or kvm_amd');
    return;
  }
  assert.equal(process.env.NODE_KVM_LAB, '1');
  assert.ok(existsSync('/sys/module/kvm_amd'), 'kvm_amd is loaded in L1');
  assert.ok(!existsSync('/sys/module/kvm_pvm'), 'L1 is not the PVM host');
  assert.ok(statSync('/dev/kvm').isCharacterDevice());
});
