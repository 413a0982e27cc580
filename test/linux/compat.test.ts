// Third-party guests nobody here wrote, booted the way GRUB and QEMU boot them:
//   memtest86+ 6.10 (Debian package memtest86+): the x64 bzImage through the 64-bit entry with
//     1 and 2 vCPUs, the ia32 bzImage through the 32-bit boot protocol with 1. Each must start
//     its test loop, finish the first test pattern with 0 errors (then the test stops it), and
//     with 2 vCPUs test on both CPUs in parallel mode. Its console is a screen drawn over the
//     serial port with ANSI cursor codes, which are stripped before matching.
//   Debian's rt and cloud kernels of the default kernel's version, with the default image's
//     initramfs: /init runs a command and powers off.
// Each failure names the guest and shows the tail of its console.
import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { DEFAULT_CMDLINE } from '../../lib/machine/cmdline.js';
import { Machine, type MachineResult } from '../../lib/machine/index.js';
import { EXIT_MARKER_PREFIX, READY_MARKER } from '../../lib/images/index.js';
import { getFlavourKernel, type KernelFlavour } from '../../lib/images/flavour.js';
import { registerDump } from '../../lib/machine/diagnostics.js';
import { requireKvm } from '../helpers/kvm.js';
import { BOOT_TIMEOUT_MS, COMMAND_TIMEOUT_MS, defaultImage } from './helpers.js';

const MEMTEST_DIR = process.env.NODE_KVM_TEST_MEMTEST_DIR ?? '/boot';
/**
 * memtest86+ options: its screen on COM1; skip the USB keyboard probe, SPD, the memory
 * benchmark and chipset reads, none of which our PC has (measured in the lab: its screen
 * appears after 5 s instead of 38 s). Options a version does not know are ignored.
 */
const MEMTEST_CMDLINE = 'console=ttyS0,115200 keyboard=legacy nosm nobench nomch nopause';
/** Boot, start-up and test #0 over 16 MiB took 25-65 s in the lab (TCG, time stretched ~10x). */
const MEMTEST_TIMEOUT_MS = 300_000;

/** memtest's serial screen as plain text: cursor and colour codes become spaces. */
export function screenText(raw: string): string {
  return raw.replace(/\x1b\[[0-9;?]*[A-Za-z]/g, ' ').replace(/\x1b[()][0-9A-Za-z]/g, '').replace(/\s+/g, ' ');
}

function tailOf(m: Machine, strip: boolean): string {
  const tail = m.console.tail(strip ? 12000 : 3000);
  return strip ? screenText(tail).slice(-1500) : tail;
}

/**
 * Resolves when `done(text)` holds for the guest's recent output (the last 16 KiB: memtest
 * redraws its status every 2 s, and scanning all of it per chunk would cost seconds under TCG);
 * rejects on timeout or when the guest ends.
 */
function watch(m: Machine, guest: string, strip: boolean, done: (text: string) => boolean, timeoutMs: number): Promise<void> {
  return new Promise((resolve, reject) => {
    let finished = false;
    const check = (): void => {
      const recent = m.console.tail(16384);
      if (finished || !done(strip ? screenText(recent) : recent)) return;
      finish();
      resolve();
    };
    const timer = setTimeout(() => {
      finish();
      void stallReport(m).then((where) =>
        reject(new Error(`${guest}: not there within ${timeoutMs / 1000} s; ${where}; console tail:\n${tailOf(m, strip)}`)));
    }, timeoutMs);
    const finish = (): void => {
      finished = true;
      clearTimeout(timer);
      m.console.off('output', check);
    };
    m.console.on('output', check);
    m.wait().then((r: MachineResult) => {
      if (finished) return;
      finish();
      reject(new Error(`${guest}: the machine ended (${r.reason}: ${r.detail ?? ''}); console tail:\n${tailOf(m, strip)}`));
    }, () => undefined);
    check();
  });
}

/** Where a guest that went quiet is: vCPU 0's registers and the exit counts (the machine is paused). */
async function stallReport(m: Machine): Promise<string> {
  try {
    await m.pause();
    return `exits ${JSON.stringify(m.counters)}\n${registerDump(m.vcpus[0]!)}`;
  } catch (e) {
    return `(no register dump: ${(e as Error).message})`;
  }
}

function memtestFile(t: TestContext, file: string): string {
  const path = `${MEMTEST_DIR}/${file}`;
  // Installed by scripts/apt-packages.txt; its absence is a set-up failure, never a skip.
  assert.ok(existsSync(path), `${path} is missing: apt-get install memtest86+ (scripts/apt-packages.txt)`);
  t.diagnostic(`guest ${path}`);
  return path;
}

async function memtest(t: TestContext, file: string, cpus: number, bits: 32 | 64): Promise<void> {
  if (!requireKvm(t)) return;
  const guest = `${file} (${cpus} vCPU${cpus > 1 ? 's' : ''})`;
  await using m = await Machine.create({ kernel: memtestFile(t, file), cmdline: MEMTEST_CMDLINE, memory: '16M', cpus });
  assert.equal(m.boot.sregs.cs?.l, bits === 64 ? 1 : 0, `${guest}: entered through the ${bits}-bit protocol`);
  m.start();
  // Tests run in order from #0, so a label #1 or later means test #0 finished.
  const testNumbers = (s: string): number[] => [...s.matchAll(/#(\d+) \[/g)].map((x) => Number(x[1]));
  await watch(m, `${guest}: memtest's test loop`, true, (s) => testNumbers(s).length > 0, MEMTEST_TIMEOUT_MS);
  await watch(m, `${guest}: the first test pattern completed`, true, (s) => testNumbers(s).some((n) => n >= 1), MEMTEST_TIMEOUT_MS);
  const screen = screenText(m.console.output);
  const errors = [...screen.matchAll(/Errors: (\d+)/g)].map((x) => Number(x[1]));
  assert.ok(errors.length > 0 && errors.every((n) => n === 0), `${guest}: errors reported ${JSON.stringify(errors)}; console tail:\n${tailOf(m, true)}`);
  if (cpus > 1) {
    assert.match(screen, new RegExp(`SMP: ${cpus}T \\(PAR\\)`), `${guest}: not testing on ${cpus} CPUs in parallel; console tail:\n${tailOf(m, true)}`);
  }
  await m.stop();
}

test('memtest86+ x64 (64-bit entry), 1 vCPU: test loop starts, first pattern passes with 0 errors', (t) => memtest(t, 'memtest86+x64.bin', 1, 64));
test('memtest86+ x64 (64-bit entry), 2 vCPUs: both CPUs in parallel mode, first pattern passes with 0 errors', (t) => memtest(t, 'memtest86+x64.bin', 2, 64));
test('memtest86+ ia32 (32-bit boot protocol), 1 vCPU: test loop starts, first pattern passes with 0 errors', (t) => memtest(t, 'memtest86+ia32.bin', 1, 32));

// The whole line, not just the prefix: the status digits may arrive in a later UART batch.
const exitStatusLine = new RegExp(`${EXIT_MARKER_PREFIX}(\\d+)\\r?\\n`);

async function flavour(t: TestContext, name: KernelFlavour): Promise<void> {
  if (!requireKvm(t)) return;
  const img = await defaultImage();
  // Inside the lab there is no network: the test runner fetched the kernel on the host.
  const k = await getFlavourKernel(img, name, { download: process.env.NODE_KVM_LAB !== '1' });
  const guest = `${k.packageName} ${k.packageVersion}`;
  t.diagnostic(`guest ${guest}`);
  const cmdline = `${DEFAULT_CMDLINE} quiet nkvm.run="uname -r; nproc"`;
  await using m = await Machine.create({ kernel: k.bzImage, initrd: img.initrd, cmdline, memory: '128M', cpus: 2 });
  assert.equal(m.boot.format, 'bzimage');
  m.start();
  await watch(m, `${guest}: /init's readiness line`, false, (s) => s.includes(READY_MARKER), BOOT_TIMEOUT_MS);
  await watch(m, `${guest}: the command's exit status`, false, (s) => exitStatusLine.test(s), COMMAND_TIMEOUT_MS);
  const out = m.console.output.replace(/\r/g, '');
  const status = exitStatusLine.exec(out)?.[1];
  assert.equal(status, '0', `${guest}: the command failed; console tail:\n${tailOf(m, false)}`);
  assert.match(out, new RegExp(`\\n${k.release.replace(/[.+]/g, '\\$&')}\\n2\\n`), `${guest}: uname -r / nproc; console tail:\n${tailOf(m, false)}`);
  let timer: NodeJS.Timeout | undefined;
  const r = await Promise.race([m.wait(), new Promise<undefined>((res) => { timer = setTimeout(res, COMMAND_TIMEOUT_MS, undefined); })]);
  clearTimeout(timer);
  assert.equal(r?.reason, 'poweroff', `${guest}: ${r === undefined ? 'did not power off' : `ended with ${r.reason}: ${r.detail ?? ''}`}; console tail:\n${tailOf(m, false)}`);
}

test('Debian rt kernel, default initramfs, 2 vCPUs: /init runs a command and powers off', (t) => flavour(t, 'rt'));
test('Debian cloud kernel, default initramfs, 2 vCPUs: /init runs a command and powers off', (t) => flavour(t, 'cloud'));
