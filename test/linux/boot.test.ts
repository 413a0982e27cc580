// Real Linux (the default image's Debian kernel + busybox initramfs) booted by our VMM. Two
// boots, each checking several things, because an L2 boot costs 10-20 s inside the lab:
//   vmlinux, 1 CPU:  shell prompt, a typed command's output, /proc/cmdline intact, `poweroff`
//   bzImage, 2 CPUs: 2 CPUs in /proc/cpuinfo, a 20 MB initrd file intact, `reboot`
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { DEFAULT_CMDLINE } from '../../lib/machine/cmdline.js';
import { Machine, type MachineResult } from '../../lib/machine/index.js';
import { GUEST_PROMPT, READY_MARKER } from '../../lib/images/index.js';
import { requireKvm } from '../helpers/kvm.js';
import { BOOT_TIMEOUT_MS, COMMAND_TIMEOUT_MS, defaultImage, initrdWithFiles, sha256Hex, shell } from './helpers.js';

/** m.wait(), but a guest that does not end in time is stopped and the test fails with its console tail. */
async function waitEnd(m: Machine, timeoutMs: number): Promise<MachineResult> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => {
      void m.stop();
      reject(new Error(`guest did not end within ${timeoutMs} ms; console tail:\n${m.console.tail()}`));
    }, timeoutMs);
  });
  try {
    return await Promise.race([m.wait(), timeout]);
  } finally {
    clearTimeout(timer);
  }
}

async function bootToPrompt(m: Machine): Promise<void> {
  m.start();
  await m.console.waitFor(READY_MARKER, { timeout: BOOT_TIMEOUT_MS });
  await m.console.waitFor(GUEST_PROMPT, { timeout: COMMAND_TIMEOUT_MS });
}

// Punctuation the kernel's parser and the shell treat specially (quotes, '=', ',', ';', '%'),
// but no glob characters: the guest's /init expands $cmdline unquoted.
const CMDLINE_TOKEN = 'nkvm.probe=a,b:c/d+e%f@g~h^i!j=k;l&m nkvm.quoted="two words"';

test('vmlinux boots to the shell; typed commands run; /proc/cmdline is intact; poweroff ends the VM', async (t) => {
  if (!requireKvm(t)) return;
  const img = await defaultImage();
  const cmdline = `${DEFAULT_CMDLINE} quiet ${CMDLINE_TOKEN}`;
  await using m = await Machine.create({ kernel: img.vmlinux, initrd: img.initrd, cmdline, memory: '256M', cpus: 1 });
  assert.equal(m.boot.format === 'pvh' || m.boot.format === 'elf64', true, `vmlinux loaded as ${m.boot.format}`);

  let up = false;
  await t.test('reaches the readiness line and the shell prompt', async () => {
    await bootToPrompt(m);
    up = true;
  });
  if (!up) return;

  await t.test('a command typed on the console runs and its output comes back', async () => {
    m.console.write('echo $((6*7))\n');
    await m.console.waitFor(/\n42\r?\n/, { timeout: COMMAND_TIMEOUT_MS });
    await m.console.waitFor(GUEST_PROMPT, { timeout: COMMAND_TIMEOUT_MS });
  });

  await t.test('the command line arrives intact in /proc/cmdline', async () => {
    const r = await shell(m, 'cat /proc/cmdline');
    assert.equal(r.status, 0);
    assert.equal(r.output.trim(), cmdline);
  });

  await t.test('typed poweroff ends the machine with reason poweroff', async () => {
    m.console.write('poweroff\n');
    const r = await waitEnd(m, COMMAND_TIMEOUT_MS);
    assert.equal(r.reason, 'poweroff', `ended with ${r.reason}: ${r.detail ?? ''}\n${m.console.tail()}`);
    assert.equal(r.code, 0);
  });
});

test('bzImage with 2 CPUs and a 20 MB initrd file: both CPUs up, the file intact, reboot reported', async (t) => {
  if (!requireKvm(t)) return;
  const img = await defaultImage();
  const payload = randomBytes(20 * 1024 * 1024);
  const initrd = initrdWithFiles(img.initrd, { 'payload.bin': payload });
  t.after(initrd.cleanup);
  await using m = await Machine.create({
    kernel: img.kernel, initrd: initrd.path, cmdline: `${DEFAULT_CMDLINE} quiet`, memory: '256M', cpus: 2,
  });
  assert.equal(m.boot.format, 'bzimage');

  let up = false;
  await t.test('reaches the shell prompt', async () => {
    await bootToPrompt(m);
    up = true;
  });
  if (!up) return;

  await t.test('/proc/cpuinfo lists 2 CPUs', async () => {
    const r = await shell(m, 'grep -c ^processor /proc/cpuinfo');
    assert.equal(r.output.trim(), '2', r.output);
  });

  await t.test('the 20 MB file from the appended initrd archive has the host\'s sha256', async () => {
    const r = await shell(m, 'wc -c < /payload.bin; sha256sum /payload.bin');
    assert.equal(r.status, 0, r.output);
    const [size, sum] = r.output.trim().split('\n');
    assert.equal(Number(size), payload.length);
    assert.equal(sum?.split(/\s+/)[0], sha256Hex(payload));
  });

  await t.test('typed reboot ends the machine with reason reboot', async () => {
    m.console.write('reboot\n');
    const r = await waitEnd(m, COMMAND_TIMEOUT_MS);
    assert.equal(r.reason, 'reboot', `ended with ${r.reason}: ${r.detail ?? ''}\n${m.console.tail()}`);
  });
});
