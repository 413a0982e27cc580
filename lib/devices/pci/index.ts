export * from './config-space.js';
export { PciDevice, type BarKind, type BarMapper, type CoalescedZone, type PciBarDefinition, type PciIdentity } from './device.js';
export { PciHostBridge, type PciHostBridgeOptions } from './host-bridge.js';
