// The interactive console: Ctrl-C interrupts a foreground command (the shell has job control
// on ttyS0 and default signal dispositions), and exiting the shell powers the machine off.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { requireKvm } from '../helpers/kvm.js';
import { GUEST_PROMPT } from '../../lib/images/index.js';
import { DEFAULT_CMDLINE } from '../../lib/machine/cmdline.js';
import { Machine } from '../../lib/machine/index.js';
import { BOOT_TIMEOUT_MS, COMMAND_TIMEOUT_MS, defaultImage, shell } from './helpers.js';

test('Ctrl-C interrupts a foreground command; exiting the shell powers off', { timeout: 300_000 }, async (t) => {
  if (!requireKvm(t)) return;
  const img = await defaultImage();
  const m = await Machine.create({ kernel: img.vmlinux, initrd: img.initrd, cmdline: `${DEFAULT_CMDLINE} quiet`, memory: '256M' });
  try {
    m.start();
    await m.console.waitFor(GUEST_PROMPT, { timeout: BOOT_TIMEOUT_MS });
    // The marker comes from the foreground job itself, which then becomes sleep: once it shows,
    // Ctrl-C reaches that job (before or after the exec), however slowly the guest runs. A
    // fixed wait instead raced the shell's fork on a loaded host.
    m.console.write("sh -c 'echo SLEEP-START; exec sleep 1000'\n");
    await m.console.waitFor(/\nSLEEP-START/, { timeout: COMMAND_TIMEOUT_MS });
    m.console.write('\x03');
    await m.console.waitFor(GUEST_PROMPT, { timeout: COMMAND_TIMEOUT_MS });
    const r = await shell(m, 'pidof sleep; echo tty=$(tty)');
    assert.match(r.output, /tty=\/dev\/ttyS0/);
    assert.doesNotMatch(r.output, /^\d+$/m, 'sleep is gone after Ctrl-C');
    m.console.write('exit\n');
    const end = await m.wait();
    assert.equal(end.reason, 'poweroff', end.detail);
  } finally {
    await m.close();
  }
});
