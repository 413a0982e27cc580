// node-kvm: the package root. Low-level KVM binding first; higher layers add their exports.
export * from './kvm/index.js';
export * from './errors.js';
export type { BusDevice, IrqLine, DmaMemory, Clock } from './bus/device.js';
export { KvmIrqLine } from './bus/irq.js';
export { PioBus, MmioBus, Bus } from './bus/bus.js';
export * from './machine/index.js';
export { MachineSnapshot, loadSnapshot, SnapshotFileError, SNAPSHOT_FORMAT_VERSION, type SnapshotConfig, type RestoreOptions } from './machine/snapshot.js';
