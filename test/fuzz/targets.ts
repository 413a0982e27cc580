// Every fuzz target, and which of the machine's bus devices each one covers (by the name the
// Platform registers it under; PCI BARs by the device behind them).
import type { FuzzTarget } from './harness.js';
import { acpiPmTarget } from './devices/acpi-pm.js';
import { cmosTarget } from './devices/cmos.js';
import { debugExitTarget } from './devices/debug-exit.js';
import { fwCfgTarget } from './devices/fw-cfg.js';
import { i8042Target } from './devices/i8042.js';
import { platformTarget } from './devices/platform.js';
import { rtl8139CplusTarget, rtl8139NormalTarget } from './devices/rtl8139.js';
import { rtl8139RxTarget } from './devices/rtl8139-rx.js';
import { rtl8139CplusDataTarget } from './devices/rtl8139-cplus-data.js';
import { uartTarget } from './devices/uart.js';

export const FUZZ_TARGETS: readonly FuzzTarget[] = [
  uartTarget, i8042Target, cmosTarget, fwCfgTarget, acpiPmTarget, debugExitTarget, platformTarget,
  rtl8139NormalTarget, rtl8139CplusTarget, rtl8139RxTarget, rtl8139CplusDataTarget,
];

/** Platform bus registration name (or 'rtl8139' for a NIC's BARs) → the targets that fuzz it. */
export const COVERAGE: Readonly<Record<string, readonly FuzzTarget[]>> = {
  com1: [uartTarget], com2: [uartTarget], com3: [uartTarget], com4: [uartTarget],
  i8042: [i8042Target], cmos: [cmosTarget], 'debug-exit': [debugExitTarget], 'fw-cfg': [fwCfgTarget],
  'acpi-pm': [acpiPmTarget], post: [debugExitTarget], 'io-delay': [debugExitTarget], pci: [platformTarget],
  rtl8139: [rtl8139NormalTarget, rtl8139CplusTarget, rtl8139RxTarget, rtl8139CplusDataTarget, platformTarget],
};
