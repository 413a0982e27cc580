// node-kvm/testing: helpers for scripted VM tests (boot, exec over the guest agent or the console, topologies of
// VMs on in-process switches with fault injection and capture, artifacts on failure).
export { bootVm, TestVm, uniqueMac, type BootVmOptions, type CleanupHost, type ExecOptions, type ExecResult, type MountOptions } from './vm.js';
export type { ShareOptions } from '../devices/virtio/9p/share.js';
export { topology, Topology, TopologyLink, type LinkSpec, type TopologySpec } from './topology.js';
export { VmScope, withVms, vmTest, artifactsRoot, type VmTestOptions, type VmTemplateTestOptions } from './scope.js';
export { BootError, ExecFailedError, ExecProtocolError, ExecTimeoutError, GuestFileError } from './errors.js';
export { AgentError, AgentRequestError } from './agent-client.js';
export { AGENT_PORT_NAME, AgentProtocolError } from './agent-protocol.js';
export type { Impairments } from '../net/link.js';
export { execInVm, type ExecInVmOptions, type ExecInVmResult } from './exec-in-vm.js';
export { vmTemplate, loadTemplate, VmTemplate, TemplateSetupError, type VmTemplateOptions, type ForkOptions, type ForkNet, type LoadTemplateOptions, type TemplateCounters } from './template.js';
export type { ForkAddress } from './fork-guest.js';
