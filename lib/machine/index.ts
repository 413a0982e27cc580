export { Machine, type MachineResult, type ExitCounters, type MachineState, type NetBackendsFor, type FromSnapshotOptions } from './machine.js';
export { MachineConsole, ConsoleTimeoutError } from './console.js';
export { parseSize, type MachineOptions, type NetOptions } from './options.js';
export type { Size } from '../size.js';
export type { EndReason } from './platform.js';
export type { ShareOverride } from './snapshot-shares.js';
