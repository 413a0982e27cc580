// NIC counters, and the C+ "tally counter" block 8139cp reads through StatsAddr.DumpStats
// (struct cp_dma_stats: 64 bytes, little-endian).

export interface Rtl8139Stats {
  txFrames: number;
  txBytes: number;
  txErrors: number;
  txBadSize: number;
  txDmaErrors: number;
  txNoCarrier: number;
  /** C+ LargeSend descriptors refused for an MSS below CP_MIN_MSS (also in txErrors). */
  txBadMss: number;
  /** Times a C+ transmit ran out of its turn's WorkBudget and went on in a later turn. */
  txDeferred: number;
  rxFrames: number;
  rxBytes: number;
  rxFiltered: number;
  rxDisabled: number;
  rxTooLong: number;
  rxDmaErrors: number;
  /** Frames dropped because the ring (or C+ descriptors) had no room; MPC counts the same. */
  rxMissed: number;
  rxQueued: number;
  /** Times the backend was asked to pause because frames were waiting for the ring. */
  rxPauses: number;
  /** Times frames waited for a later turn because this turn's receive budget was used. */
  rxDeferred: number;
  rxBroadcast: number;
  rxMulticast: number;
  rxPhysical: number;
}

export function zeroStats(): Rtl8139Stats {
  return { txFrames: 0, txBytes: 0, txErrors: 0, txBadSize: 0, txDmaErrors: 0, txNoCarrier: 0, txBadMss: 0, txDeferred: 0,
    rxFrames: 0, rxBytes: 0, rxFiltered: 0, rxDisabled: 0, rxTooLong: 0, rxDmaErrors: 0,
    rxMissed: 0, rxQueued: 0, rxPauses: 0, rxDeferred: 0, rxBroadcast: 0, rxMulticast: 0, rxPhysical: 0 };
}

/** The 64-byte tally block: tx_ok, rx_ok, tx_err (u64), rx_err (u32), missed (u16), ... */
export function tallyCounters(s: Rtl8139Stats): Uint8Array {
  const b = new Uint8Array(64);
  const d = new DataView(b.buffer);
  d.setBigUint64(0, BigInt(s.txFrames), true);
  d.setBigUint64(8, BigInt(s.rxFrames), true);
  d.setBigUint64(16, BigInt(s.txErrors), true);
  d.setUint32(24, (s.rxDmaErrors + s.rxTooLong) >>> 0, true);
  d.setUint16(28, Math.min(s.rxMissed, 0xffff), true);
  d.setBigUint64(40, BigInt(s.rxPhysical), true);
  d.setBigUint64(48, BigInt(s.rxBroadcast), true);
  d.setUint32(56, s.rxMulticast >>> 0, true);
  d.setUint16(60, Math.min(s.txErrors, 0xffff), true);
  return b;
}
