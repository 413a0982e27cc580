// The nested lab: run commands where a real /dev/kvm (kvm_amd on emulated SVM) exists.
export { runInLab, DEFAULT_LAB_TIMEOUT_MS, DEFAULT_LAB_MEMORY, LAB_TIMEOUT_STATUS, LAB_FAILURE_STATUS } from './run.js';
export type { RunInLabOptions, LabResult } from './run.js';
export { getLabImage, LAB_IMAGE_NAME, LAB_PROFILE } from './lab-image.js';
export { labEnvironment, jobScript, parseEnvSpecs, shellQuote } from './job.js';
export { labQemuArgs, QEMU_BINARY } from './qemu.js';
export { LAB_READY_MARKER, LAB_EXIT_MARKER_PREFIX, LAB_MODULES } from './l1-init.js';
