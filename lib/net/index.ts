export { BackendBase, createPipe, MemoryBackend, NullBackend, type FrameListener, type LinkListener, type NetBackend, type TcpSegmentation } from './backend.js';
export { L2Switch, SwitchPort, type SwitchOptions, type SwitchStats } from './switch.js';
export { PcapWriter, PCAP_MAGIC_NS, LINKTYPE_ETHERNET, type PcapOptions, type PcapSink } from './pcap.js';
export { LinkShaper, seededRandom, type DirectionStats, type Impairments, type LinkShaperOptions, type ShaperTimers } from './link.js';
export * from './checksum.js';
export { parseIpv4, prepareSegmentation, segmentTcp, type Ipv4Info } from './tcp-segmentation.js';
export { TapBackend, type TapOptions, type TapStats } from './tap.js';
export { finishReceiveOffload, RX_CHECKSUMS_VALID, type OffloadResult, type VnetHeaderLayout } from './receive-offload.js';
