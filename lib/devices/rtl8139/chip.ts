// What the transmit and receive sides (transmitter.ts, receiver.ts) see of the rest of the
// RTL8139: the register file they take their configuration from, guest RAM, the PHY's link, the
// counters, the interrupt status and the backend. The NIC (rtl8139.ts) hands both the same one.
import type { DmaMemory } from '../../bus/device.js';
import type { NetBackend } from '../../net/backend.js';
import type { Rtl8139Phy } from './mii.js';
import { CpCmd, CpRxOn, CpTxOn } from './regs.js';
import type { Rtl8139Stats } from './stats.js';

export interface Chip {
  /** The 256-byte register file, as bytes and as a little-endian view of the same buffer. */
  readonly regs: Uint8Array;
  readonly dv: DataView;
  readonly mem: DmaMemory;
  readonly phy: Rtl8139Phy;
  readonly stats: Rtl8139Stats;
  /** Set ISR bits (and INTx with them). */
  raise(bits: number): void;
  /** The backend attached now, if any. */
  backend(): NetBackend | undefined;
}

/** A 64-bit register (C+ ring and StatsAddr addresses) as a number. */
export function reg64(dv: DataView, o: number): number {
  return dv.getUint32(o, true) + dv.getUint32(o + 4, true) * 0x1_0000_0000;
}

/** C+ mode: CpCmd enables either C+ ring (TSD0-3 are then StatsAddr). */
export function cplusMode(dv: DataView): boolean {
  return (dv.getUint16(CpCmd, true) & (CpRxOn | CpTxOn)) !== 0;
}
