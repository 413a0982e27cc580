// The ACPI PM block driven the way Linux's ACPICA drives it, with a fake clock and a recording
// SCI line: sleep requests, the PM timer, W1C status bits, the SCI level and the reset register.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  ACPI_PM_IO_LENGTH, AcpiPm, type AcpiSleepState, PM_TIMER_HZ, PWRBTN_EN, PWRBTN_STS, SCI_EN, SLP_EN, WAK_STS,
} from '../../lib/devices/acpi-pm.js';
import { RecordingIrqLine } from '../../lib/bus/irq.js';
import {
  ACPI_RESET_VALUE, PORT_ACPI_GPE0, PORT_ACPI_PM1A_CNT, PORT_ACPI_PM1A_EVT, PORT_ACPI_PM_TMR,
} from '../../lib/platform/layout.js';
import type { NodeKvmError } from '../../lib/errors.js';

const PM1_STS = 0;
const PM1_EN = 2;
const PM1_CNT = PORT_ACPI_PM1A_CNT - PORT_ACPI_PM1A_EVT;
const PM_TMR = PORT_ACPI_PM_TMR - PORT_ACPI_PM1A_EVT;
const GPE0_STS = PORT_ACPI_GPE0 - PORT_ACPI_PM1A_EVT;
const GPE0_EN = GPE0_STS + 2;

function setup(): {
  pm: AcpiPm; sci: RecordingIrqLine; clock: { ns: bigint; nowNs(): bigint };
  sleeps: Array<[AcpiSleepState, number]>; resets: number[];
} {
  const clock = { ns: 1_000_000n, nowNs(): bigint { return this.ns; } };
  const sci = new RecordingIrqLine();
  const sleeps: Array<[AcpiSleepState, number]> = [];
  const resets: number[] = [];
  const pm = new AcpiPm({ clock, sci, onSleep: (s, t) => sleeps.push([s, t]), onReset: () => resets.push(1) });
  return { pm, sci, clock, sleeps, resets };
}

test('window length covers PM1a_EVT through GPE0', () => {
  assert.equal(ACPI_PM_IO_LENGTH, 0x24);
});

test('PM1a_CNT: SCI_EN reads 1; writing 0x3400 (SLP_TYP=5 | SLP_EN) requests S5', () => {
  const { pm, sleeps } = setup();
  assert.equal(pm.read(PM1_CNT, 2) & SCI_EN, SCI_EN);
  // ACPICA first writes SLP_TYP alone, then SLP_TYP | SLP_EN.
  pm.write(PM1_CNT, 2, 5 << 10);
  assert.deepEqual(sleeps, []);
  assert.equal(pm.read(PM1_CNT, 2), (5 << 10) | SCI_EN);
  pm.write(PM1_CNT, 2, 0x3400);
  assert.deepEqual(sleeps, [['S5', 5]]);
  assert.equal(pm.read(PM1_CNT, 2) & SLP_EN, 0, 'SLP_EN is write-only');
  // A byte-wise write of the high byte is the same request.
  pm.write(PM1_CNT + 1, 1, 0x34);
  assert.deepEqual(sleeps.at(-1), ['S5', 5]);
});

test('other sleep types are reported, not treated as S5', () => {
  const { pm, sleeps } = setup();
  pm.write(PM1_CNT, 2, (1 << 10) | SLP_EN);
  pm.write(PM1_CNT, 2, (7 << 10) | SLP_EN);
  assert.deepEqual(sleeps, [['S1', 1], ['unknown', 7]]);
  // WAK_STS is set so a guest waiting for wake after S1 carries on.
  assert.ok(pm.read(PM1_STS, 2) & WAK_STS);
});

test('PM timer runs at 3.579545 MHz from the injected clock and wraps at 32 bits', () => {
  const { pm, clock } = setup();
  const epoch = clock.ns;
  assert.equal(pm.read(PM_TMR, 4), 0);
  clock.ns += 1_000_000_000n; // one second
  assert.equal(pm.read(PM_TMR, 4), PM_TIMER_HZ);
  clock.ns += 1_000n; // 1 us more = 3.58 ticks
  assert.equal(pm.read(PM_TMR, 4), PM_TIMER_HZ + 3);
  // Past 2^24 ticks (4.687 s) it keeps counting (TMR_VAL_EXT): a guest waiting for
  // "counter > start + N" just before that point is not stuck until the next wrap.
  const at24 = (BigInt(1 << 24) * 1_000_000_000n) / BigInt(PM_TIMER_HZ);
  clock.ns = epoch + at24 - 1_000_000n; // 1 ms before
  const near = pm.read(PM_TMR, 4);
  clock.ns += 50_000_000n;
  assert.ok(pm.read(PM_TMR, 4) > near + 178_977 - 2, '50 ms later it is 50 ms of ticks higher');
  // 2^32 ticks = 1199.9 s: there it wraps and never shows more than 32 bits.
  clock.ns = epoch + 5_000_000_000n;
  const before = pm.read(PM_TMR, 4);
  clock.ns += (2n ** 32n * 1_000_000_000n) / BigInt(PM_TIMER_HZ) + 1n;
  const after = pm.read(PM_TMR, 4);
  assert.ok(after <= 0xffffffff);
  assert.ok(Math.abs(after - before) <= 1, `wrapped back to about ${before}, got ${after}`);
  // Byte reads assemble the same value; writes are ignored.
  const dword = pm.read(PM_TMR, 4);
  assert.equal((pm.read(PM_TMR, 1) | (pm.read(PM_TMR + 1, 1) << 8) | (pm.read(PM_TMR + 2, 1) << 16) | (pm.read(PM_TMR + 3, 1) << 24)) >>> 0, dword);
  pm.write(PM_TMR, 4, 0x1234);
  assert.equal(pm.read(PM_TMR, 4), dword);
});

test('reset() restarts the timer', () => {
  const { pm, clock } = setup();
  clock.ns += 5_000_000n;
  assert.ok(pm.read(PM_TMR, 4) > 0);
  pm.reset();
  assert.equal(pm.read(PM_TMR, 4), 0);
});

test('power button: W1C status and a level SCI gated by PWRBTN_EN', () => {
  const { pm, sci } = setup();
  pm.pressPowerButton();
  assert.equal(pm.read(PM1_STS, 2) & PWRBTN_STS, PWRBTN_STS);
  assert.equal(sci.level, false, 'not enabled yet');
  pm.write(PM1_EN, 2, PWRBTN_EN);
  assert.equal(pm.read(PM1_EN, 2), PWRBTN_EN);
  assert.equal(sci.level, true);
  // Writing 0 to a status bit leaves it alone; writing 1 clears it.
  pm.write(PM1_STS, 2, 0);
  assert.equal(sci.level, true);
  assert.equal(pm.read(PM1_STS, 2) & PWRBTN_STS, PWRBTN_STS);
  pm.write(PM1_STS, 2, PWRBTN_STS);
  assert.equal(pm.read(PM1_STS, 2) & PWRBTN_STS, 0);
  assert.equal(sci.level, false);
  // A press while enabled raises it immediately; disabling drops the line but keeps the status.
  pm.pressPowerButton();
  assert.equal(sci.level, true);
  pm.write(PM1_EN, 2, 0);
  assert.equal(sci.level, false);
  assert.equal(pm.read(PM1_STS, 2) & PWRBTN_STS, PWRBTN_STS);
});

test('a dword write at PM1a_EVT sets PM1_EN and clears PM1_STS in one access', () => {
  const { pm, sci } = setup();
  pm.pressPowerButton();
  pm.write(PM1_STS, 4, (PWRBTN_EN << 16) | PWRBTN_STS);
  assert.equal(pm.read(PM1_STS, 4), PWRBTN_EN << 16);
  assert.equal(sci.level, false);
});

test('GPE0: W1C status, enable bits, SCI level', () => {
  const { pm, sci } = setup();
  pm.raiseGpe(3);
  assert.equal(pm.read(GPE0_STS, 1), 0x08);
  assert.equal(sci.level, false);
  pm.write(GPE0_EN, 1, 0x08);
  assert.equal(sci.level, true);
  pm.write(GPE0_STS, 1, 0x08);
  assert.equal(pm.read(GPE0_STS, 2), 0);
  assert.equal(sci.level, false);
  pm.raiseGpe(9);
  assert.equal(sci.level, false, 'bit 9 not enabled');
  pm.write(GPE0_EN + 1, 1, 0x02);
  assert.equal(sci.level, true);
  assert.throws(() => pm.raiseGpe(16), (e: NodeKvmError) => e.code === 'ERR_INVALID_ARG');
});

test('gaps read all-ones and ignore writes; odd sizes never throw', () => {
  const { pm } = setup();
  assert.equal(pm.read(6, 2), 0xffff);
  assert.equal(pm.read(0x10, 4), 0xffffffff);
  pm.write(0x10, 4, 0xffffffff);
  assert.equal(pm.read(PM1_CNT, 4), (0xffff0000 | SCI_EN) >>> 0);
});

test('reset register: RESET_VALUE (and any RST_CPU write) resets; 0x02 staging does not', () => {
  const { pm, resets } = setup();
  pm.resetRegister.write(0, 1, 0x02);
  pm.resetRegister.write(0, 1, 0x01);
  assert.deepEqual(resets, []);
  assert.equal(pm.resetRegister.read(0, 1), 0x00, 'only SYS_RST/FULL_RST are kept, 0x01 cleared them');
  pm.resetRegister.write(0, 1, 0x02);
  assert.equal(pm.resetRegister.read(0, 1), 0x02);
  pm.resetRegister.write(0, 1, ACPI_RESET_VALUE);
  assert.deepEqual(resets, [1]);
  pm.resetRegister.write(0, 1, 0x0e); // Linux reboot=pci cold reset
  assert.deepEqual(resets, [1, 1]);
  pm.reset();
  assert.equal(pm.resetRegister.read(0, 1), 0);
});

test('constructor refuses missing callbacks', () => {
  const clock = { nowNs: (): bigint => 0n };
  const sci = new RecordingIrqLine();
  assert.throws(() => new AcpiPm({ clock, sci, onSleep: undefined as never, onReset: () => {} }),
    (e: NodeKvmError) => e.code === 'ERR_INVALID_ARG');
});

test('the layout places the PM blocks where the device decodes them (the FADT uses the layout)', async () => {
  const L = await import('../../lib/platform/layout.js');
  const pm = await import('../../lib/devices/acpi-pm.js');
  assert.equal(L.PORT_ACPI_PM1A_CNT - L.PORT_ACPI_PM1A_EVT, pm.ACPI_PM1_CNT_OFFSET);
  assert.equal(L.PORT_ACPI_PM_TMR - L.PORT_ACPI_PM1A_EVT, pm.ACPI_PM_TMR_OFFSET);
  assert.equal(L.PORT_ACPI_GPE0 - L.PORT_ACPI_PM1A_EVT, pm.ACPI_GPE0_OFFSET);
  assert.equal(L.PORT_ACPI_GPE0_LEN, pm.ACPI_GPE0_LENGTH);
});
