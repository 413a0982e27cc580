// node-kvm/net: the network backends a NIC is given (`Machine.create({ net: [{ backend }] })`):
// a host TAP, ports of an in-process L2 switch, a pcap capture and a link shaper that wrap
// another backend, and in-memory backends for tests. Packet helpers (checksums, segmentation)
// stay internal.
export { BackendBase, createPipe, MemoryBackend, NullBackend, type FrameListener, type LinkListener, type NetBackend, type TcpSegmentation } from './backend.js';
export { L2Switch, SwitchPort, type SwitchOptions, type SwitchStats } from './switch.js';
export { PcapWriter, type PcapOptions, type PcapSink } from './pcap.js';
export { LinkShaper, seededRandom, type DirectionStats, type Impairments, type LinkShaperOptions, type ShaperTimers } from './link.js';
export { TapBackend, type TapOptions, type TapStats } from './tap.js';
export { RX_CHECKSUMS_VALID } from './receive-offload.js';
export { UserNetBackend, userNet, type UserNetOptions, type UserNetStats, type UserForward, type ActiveForward, type UserAddressing, type FailureListener } from './user.js';
