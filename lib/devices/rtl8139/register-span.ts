// Which register each byte of the 256-byte file belongs to: registers wider than a byte are
// read and written as a unit (byte accesses merge into them), everything else is a byte.
import * as R from './regs.js';

const WIDE: Array<[number, number]> = [
  [R.TxStatus0, 4], [R.TxStatus0 + 4, 4], [R.TxStatus0 + 8, 4], [R.TxStatus0 + 12, 4],
  [R.TxAddr0, 4], [R.TxAddr0 + 4, 4], [R.TxAddr0 + 8, 4], [R.TxAddr0 + 12, 4],
  [R.RxBuf, 4], [R.RxEarlyCnt, 2], [R.RxBufPtr, 2], [R.RxBufAddr, 2], [R.IntrMask, 2],
  [R.IntrStatus, 2], [R.TxConfig, 4], [R.RxConfig, 4], [R.Timer, 4], [R.RxMissed, 4],
  [R.TimerInt, 4], [R.MultiIntr, 2], [R.TxSummary, 2], [R.BasicModeCtrl, 2],
  [R.BasicModeStatus, 2], [R.NWayAdvert, 2], [R.NWayLPAR, 2], [R.NWayExpansion, 2],
  [R.DisconnectCnt, 2], [R.FalseCarrierCnt, 2], [R.NWayTestReg, 2], [R.RxErrCnt, 2], [R.CSCR, 2],
  [R.TxDmaOkLowDesc, 2], [R.RxMaxSize, 2], [R.CpCmd, 2], [R.IntrMitigate, 2],
  [R.RxRingAddr, 4], [R.RxRingAddr + 4, 4],
];

/** REGISTER_SPAN[o] = first byte of the register containing byte o. */
export const REGISTER_SPAN = new Uint8Array(R.REGS_SIZE);
/** REGISTER_WIDTH[start] = width in bytes of the register starting at `start`. */
export const REGISTER_WIDTH = new Uint8Array(R.REGS_SIZE);
for (let o = 0; o < R.REGS_SIZE; o++) {
  REGISTER_SPAN[o] = o;
  REGISTER_WIDTH[o] = 1;
}
for (const [start, width] of WIDE) {
  REGISTER_WIDTH[start] = width;
  for (let i = 0; i < width; i++) REGISTER_SPAN[start + i] = start;
}
