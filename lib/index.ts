// node-kvm: the package root. The KVM layer (Kvm, Vm, Vcpu, guest memory), the buses a VMM
// dispatches exits with, the Machine that boots Linux, its network backends (also in
// node-kvm/net), snapshots and the error classes. Images, the nested lab and the test helpers
// are the subpaths node-kvm/images, node-kvm/lab and node-kvm/testing.
export * from './kvm/index.js';
export * from './errors.js';
export type { U64 } from './kvm/regs.js';
export type { BusDevice, CoalescedZone, IrqLine, DmaMemory, Clock } from './bus/device.js';
export { KvmIrqLine, type IrqSink } from './bus/irq.js';
export { PioBus, MmioBus, Bus, type BusRange, type BusMissHook } from './bus/bus.js';
export * from './machine/index.js';
export type { ConsolePortOptions } from './devices/virtio/console.js';
export type { ShareOptions } from './devices/virtio/9p/share.js';
export { MachineSnapshot, loadSnapshot, SnapshotFileError, SNAPSHOT_FORMAT_VERSION, type SnapshotConfig, type RestoreOptions } from './machine/snapshot.js';
export type { VerifyLevel as SnapshotVerifyLevel } from './machine/snapshot-file.js';
export { TapBackend, L2Switch, SwitchPort, PcapWriter, LinkShaper, MemoryBackend, NullBackend, createPipe, userNet, UserNetBackend, type UserNetOptions, type NetBackend, type TapOptions, type SwitchOptions, type PcapOptions, type LinkShaperOptions, type Impairments } from './net/index.js';
