// topology(): several VMs wired by in-process L2 switches. Each link is its own switch and
// subnet 10.0.<link number>.0/24; a VM gets one NIC per link it is on (eth0, eth1… in the
// order of `links`) with the host number of its position in `vms` (a = .1, b = .2, …).
// Every NIC reaches its switch through a LinkShaper (impairments act on what a VM sends, so
// `delayMs` is the one-way delay) and a capture point that records frames as they enter the
// wire, once each.
import { join } from 'node:path';
import { NodeKvmError } from '../errors.js';
import { BackendBase, type NetBackend } from '../net/backend.js';
import { LinkShaper, type DirectionStats, type Impairments } from '../net/link.js';
import { PcapWriter } from '../net/pcap.js';
import { L2Switch, type SwitchPort } from '../net/switch.js';
import { bootVm, uniqueMac, type BootVmOptions, type TestVm } from './vm.js';
import { checkOptions, keysOf } from '../options-check.js';

/** One link of a topology: an in-process switch joining some VMs. */
export interface LinkSpec {
  /** Names of the VMs on this link (two for a cable, more for a LAN). */
  between: string[];
  /** Impairments applied to what each VM sends. */
  shape?: Impairments;
  /** Name used for pcap files (default "<a>-<b>"). */
  name?: string;
}

/** What topology() builds: VMs by name and the links between them. */
export interface TopologySpec {
  /** The VMs, by name, with their boot options. */
  vms: Record<string, Omit<BootVmOptions, 'net' | 'name'>>;
  /** The links; a VM gets one NIC per link it is on (eth0, eth1, …). */
  links: LinkSpec[];
  /** Directory for pcaps whose file name is relative (default: the current directory). */
  dir?: string;
}

/** Records frames entering the wire from one endpoint while a capture is on. */
class WirePoint extends BackendBase {
  pcap: PcapWriter | undefined;
  private readonly unsub: Array<() => void>;
  constructor(private readonly inner: NetBackend) {
    super();
    this.setLink(inner.linkUp);
    this.unsub = [inner.onReceive((f) => this.deliver(f)), inner.onLinkChange((up) => this.setLink(up))];
  }
  send(frame: Uint8Array): void {
    if (this.closed) return;
    this.pcap?.write(frame);
    this.inner.send(frame);
  }
  override close(): void {
    if (this.closed) return;
    super.close();
    for (const u of this.unsub) u();
    this.inner.close();
  }
}

interface Endpoint {
  vm: string;
  ip: string;
  iface: string;
  mac: string;
  shaper: LinkShaper;
  wire: WirePoint;
  port: SwitchPort;
}

/** One link of a running topology: capture it, shape it, partition it. */
export class TopologyLink {
  /** The switch joining the link's VMs. */
  readonly switch = new L2Switch();
  /** @internal */ readonly endpoints: Endpoint[] = [];
  private pcap: PcapWriter | undefined;
  /** Path of the current (or last) capture. */
  pcapPath: string | undefined;

  /** @internal built by topology() */
  constructor(
    /** The link's name (used for pcap files). */
    readonly name: string,
    /** Its number n: the subnet is 10.0.n.0/24. */
    readonly index: number,
    private readonly dir: string | undefined,
  ) {}

  /** 10.0.<n>.0/24 */
  get subnet(): string {
    return `10.0.${this.index}.0/24`;
  }

  /** The address of `vm` on this link (no prefix length). */
  ip(vm: string): string {
    const e = this.endpoints.find((x) => x.vm === vm);
    if (e === undefined) throw new NodeKvmError('ERR_INVALID_ARG', `vm ${vm} is not on link ${this.name}`);
    return e.ip;
  }

  /** The guest interface name of `vm`'s NIC on this link. */
  iface(vm: string): string {
    const e = this.endpoints.find((x) => x.vm === vm);
    if (e === undefined) throw new NodeKvmError('ERR_INVALID_ARG', `vm ${vm} is not on link ${this.name}`);
    return e.iface;
  }

  private pick(vms?: string[]): Endpoint[] {
    return vms === undefined ? this.endpoints : this.endpoints.filter((e) => vms.includes(e.vm));
  }

  /** Pull the cables: the NICs (of `vms`, default all) see carrier loss. */
  down(vms?: string[]): void {
    for (const e of this.pick(vms)) e.shaper.down();
  }

  /** Carrier back, partition lifted. */
  up(vms?: string[]): void {
    for (const e of this.pick(vms)) {
      e.shaper.up();
      e.shaper.partition(false);
    }
  }

  /** Drop everything sent by `vms` (default all) while carrier stays up. */
  partition(on = true, vms?: string[]): void {
    for (const e of this.pick(vms)) e.shaper.partition(on);
  }

  /** Change impairments (merged) on what `vms` (default all) send. */
  shape(impairments: Impairments, vms?: string[]): void {
    for (const e of this.pick(vms)) e.shaper.set(impairments, 'egress');
  }

  /** Start recording the link to a pcap file (default <dir>/<link name>.pcap); returns the path. */
  capture(file?: string): string {
    this.stopCapture();
    const path = file === undefined ? join(this.dir ?? '.', `${this.name}.pcap`) : this.dir !== undefined && !file.startsWith('/') ? join(this.dir, file) : file;
    const pcap = new PcapWriter(path);
    this.pcap = pcap;
    this.pcapPath = path;
    for (const e of this.endpoints) e.wire.pcap = pcap;
    return path;
  }

  /** Stop the capture and close its file. */
  stopCapture(): void {
    for (const e of this.endpoints) e.wire.pcap = undefined;
    this.pcap?.close();
    this.pcap = undefined;
  }

  /** Shaper counters per VM. */
  stats(): Record<string, {
    /** What the VM sent onto the link. */ egress: DirectionStats;
    /** What the link delivered to the VM. */ ingress: DirectionStats;
  }> {
    return Object.fromEntries(this.endpoints.map((e) => [e.vm, { egress: { ...e.shaper.egress.stats }, ingress: { ...e.shaper.ingress.stats } }]));
  }

  /** @internal */
  close(): void {
    this.stopCapture();
    for (const e of this.endpoints) e.shaper.close();
    this.switch.close();
  }
}

/** VMs joined by links, as topology() or scope.topology() built them. */
export class Topology implements AsyncDisposable {
  /** @internal built by topology() */
  constructor(
    /** The VMs by name. */
    readonly vms: Record<string, TestVm>,
    /** The links, in spec order. */
    readonly links: TopologyLink[],
  ) {}

  /** The VM called `name` (throws ERR_INVALID_ARG when there is none). */
  vm(name: string): TestVm {
    const v = this.vms[name];
    if (v === undefined) throw new NodeKvmError('ERR_INVALID_ARG', `no vm ${name} in this topology`);
    return v;
  }

  /** The link joining all of `names` (the first one listed in the spec). */
  link(...names: string[]): TopologyLink {
    const l = this.links.find((x) => names.every((n) => x.endpoints.some((e) => e.vm === n)));
    if (l === undefined) throw new NodeKvmError('ERR_INVALID_ARG', `no link between ${names.join(', ')}`);
    return l;
  }

  /** `vm`'s address on the link it shares with `peer` (or its first link). */
  ip(vm: string, peer?: string): string {
    return (peer === undefined ? this.links.find((l) => l.endpoints.some((e) => e.vm === vm)) : this.link(vm, peer))?.ip(vm)
      ?? (() => { throw new NodeKvmError('ERR_INVALID_ARG', `vm ${vm} is on no link`); })();
  }

  /** Write every VM's console log into `dir`; returns the files (pcaps are already on disk). */
  saveArtifacts(dir: string): string[] {
    return Object.values(this.vms).flatMap((v) => v.saveArtifacts(dir));
  }

  /** Stop every VM and close the links. */
  async close(): Promise<void> {
    await Promise.all(Object.values(this.vms).map((v) => v.close()));
    for (const l of this.links) l.close();
  }

  /** Same as close(), for `await using`. */
  async [Symbol.asyncDispose](): Promise<void> {
    await this.close();
  }
}

/** Boot every VM of `spec` (in parallel), wired as described, each with its addresses set. */
export async function topology(spec: TopologySpec): Promise<Topology> {
  if (spec === null || typeof spec !== 'object') throw new NodeKvmError('ERR_INVALID_ARG', 'topology needs a spec { vms, links }');
  checkOptions('topology', spec, keysOf<TopologySpec>({ vms: true, links: true, dir: true }));
  if (spec.vms === null || typeof spec.vms !== 'object') throw new NodeKvmError('ERR_INVALID_ARG', 'topology: vms must be an object of name → boot options');
  if (!Array.isArray(spec.links)) throw new NodeKvmError('ERR_INVALID_ARG', 'topology: links must be an array');
  for (const [i, l] of spec.links.entries()) checkOptions(`topology: link ${i}`, l, keysOf<LinkSpec>({ between: true, shape: true, name: true }));
  const names = Object.keys(spec.vms);
  if (names.length === 0) throw new NodeKvmError('ERR_INVALID_ARG', 'topology needs at least one vm');
  if (spec.links.length > 250) throw new NodeKvmError('ERR_INVALID_ARG', 'at most 250 links');
  const nets = new Map<string, Array<{ backend: NetBackend; mac: string }>>(names.map((n) => [n, []]));
  const links = spec.links.map((ls, i) => {
    for (const n of ls.between) if (!nets.has(n)) throw new NodeKvmError('ERR_INVALID_ARG', `link ${i} names unknown vm ${n}`);
    if (new Set(ls.between).size < 2) throw new NodeKvmError('ERR_INVALID_ARG', `link ${i} needs two different vms`);
    const link = new TopologyLink(ls.name ?? ls.between.join('-'), i + 1, spec.dir);
    for (const vm of ls.between) {
      const port = link.switch.port(vm);
      const wire = new WirePoint(port);
      const shaper = new LinkShaper(wire, { egress: ls.shape ?? {} });
      const nics = nets.get(vm)!;
      const mac = uniqueMac();
      link.endpoints.push({ vm, ip: `10.0.${i + 1}.${names.indexOf(vm) + 1}`, iface: `eth${nics.length}`, mac, shaper, wire, port });
      nics.push({ backend: shaper, mac });
    }
    return link;
  });
  const first = (vm: string): Endpoint | undefined => links.flatMap((l) => l.endpoints).find((e) => e.vm === vm && e.iface === 'eth0');
  const booted = await Promise.allSettled(names.map((name) => {
    const o = spec.vms[name]!;
    const e0 = first(name);
    const cmdline = [o.cmdline ?? '', e0 ? `nkvm.ip=${e0.ip}/24` : 'nkvm.ip=none', `nkvm.hostname=${name}`].filter((s) => s !== '').join(' ');
    return bootVm({ ...o, name, cmdline, net: nets.get(name)! });
  }));
  const vms: Record<string, TestVm> = {};
  booted.forEach((r, i) => { if (r.status === 'fulfilled') vms[names[i]!] = r.value; });
  const topo = new Topology(vms, links);
  const failed = booted.find((r): r is PromiseRejectedResult => r.status === 'rejected');
  if (failed !== undefined) {
    await topo.close();
    throw failed.reason;
  }
  try {
    for (const l of links) {
      for (const e of l.endpoints) {
        if (e.iface === 'eth0') continue;
        await vms[e.vm]!.execOk(`ip addr add ${e.ip}/24 dev ${e.iface} && ip link set ${e.iface} up`);
      }
    }
  } catch (e) {
    await topo.close();
    throw e;
  }
  return topo;
}
