export { Kvm, KVM_API_VERSION } from './kvm.js';
export { Vm, MAX_REGION_BYTES, type MemoryRegion, type MemoryRegionOptions } from './vm.js';
export { Vcpu, type ExitHandler, type RunLoopOptions } from './vcpu.js';
export { GuestMemory, type RamRegion } from './memory.js';
export { constants, type KvmConstants } from './constants.js';
export { readKvmStats, type KvmStats, type KvmStatsHeader } from './stats.js';
export type * from './exit.js';
export type * from './regs.js';
