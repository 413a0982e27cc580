// node-kvm/lab: run a command inside the nested lab (QEMU TCG with emulated SVM, where an L1
// Linux offers a /dev/kvm that boots stock kernels) on hosts whose own KVM cannot.
export { runInLab, DEFAULT_LAB_TIMEOUT_MS, DEFAULT_LAB_MEMORY, LAB_TIMEOUT_STATUS, LAB_FAILURE_STATUS } from './run.js';
export type { RunInLabOptions, LabResult } from './run.js';
