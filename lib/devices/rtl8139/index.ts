export * as regs from './regs.js';
export { Rtl8139, parseMac, type Rtl8139Options, type Rtl8139Stats, type RxOutcome } from './rtl8139.js';
export { Eeprom93C46, rtl8139EepromImage, EEPROM_WORDS } from './eeprom.js';
export { Rtl8139Phy } from './mii.js';
export { hostTimers, type DeviceTimers } from './timer.js';
export { fcsOf, filterFrame, padFrame, RxRing } from './rx.js';
export { insertChecksums, insertVlanTag, stripVlanTag, rxChecksumStatus } from './offload.js';
export { segmentTcp, parseIpv4 } from '../../net/tcp-segmentation.js';
export { CplusRxRing, CplusTxRing, CP_MAX_DESCRIPTORS, CP_MAX_TX_FRAME } from './cplus.js';
