// An in-process L2 learning switch: many VMs (or tests) in one Node process, no root needed.
// Each port is a NetBackend; a frame sent into a port is forwarded to the port that last used
// its destination MAC as a source, or flooded to every other port when unknown, broadcast or
// multicast. Delivery is synchronous, in port order, so tests are deterministic.
import { BackendBase } from './backend.js';
import { checkOptions, keysOf } from '../options-check.js';

/** Options of an L2Switch. */
export interface SwitchOptions {
  /** Forget a learned MAC after this long (ms). Default 300 s; 0 disables ageing. */
  ageingMs?: number;
  /** Time source for ageing (ms); default Date.now. */
  now?: () => number;
}

/** What a switch did with the frames it saw. */
export interface SwitchStats {
  /** Frames sent to the one port their destination MAC was learned on. */
  forwarded: number;
  /** Frames sent to every other port (broadcast, multicast, unknown destination). */
  flooded: number;
  /** Frames to a MAC learned on the sending port itself (dropped, as a real switch does). */
  filtered: number;
  /** Frames shorter than an Ethernet header. */
  runts: number;
}

interface Entry {
  port: SwitchPort;
  seen: number;
}

/** One port of an L2Switch: a NetBackend to give a NIC. Get one with `switch.port()`. */
export class SwitchPort extends BackendBase {
  /** @internal use L2Switch.port() */
  constructor(
    private readonly sw: L2Switch,
    /** The port's name, for diagnostics. */
    readonly name: string,
  ) {
    super();
  }
  send(frame: Uint8Array): void {
    if (this.closed || !this.linkUp) return;
    this.sw.forward(this, frame);
  }
  /** Called by the switch to hand a frame to whatever is attached to this port. */
  egress(frame: Uint8Array): void {
    if (this.linkUp) this.deliver(frame);
  }
  /** Administratively bring the port's carrier up or down. */
  setCarrier(up: boolean): void {
    this.setLink(up);
  }
  override close(): void {
    if (this.closed) return;
    super.close();
    this.sw.remove(this);
  }
}

function macKey(f: Uint8Array, o: number): number {
  // 48 bits fit a double exactly.
  return f[o]! * 2 ** 40 + f[o + 1]! * 2 ** 32 + f[o + 2]! * 2 ** 24 + f[o + 3]! * 2 ** 16 + f[o + 4]! * 2 ** 8 + f[o + 5]!;
}

/**
 * An in-process learning Ethernet switch: NICs (and TAPs, or anything else that speaks frames)
 * attach through its ports; frames go to the port their destination MAC was learned on, or are
 * flooded.
 */
export class L2Switch {
  private readonly ports: SwitchPort[] = [];
  private readonly table = new Map<number, Entry>();
  private readonly ageingMs: number;
  private readonly now: () => number;
  private count = 0;
  /** Frames forwarded, flooded and dropped so far. */
  readonly stats: SwitchStats = { forwarded: 0, flooded: 0, filtered: 0, runts: 0 };

  constructor(opts: SwitchOptions = {}) {
    checkOptions('L2Switch', opts, keysOf<SwitchOptions>({ ageingMs: true, now: true }));
    this.ageingMs = opts.ageingMs ?? 300_000;
    this.now = opts.now ?? Date.now;
  }

  /** A new port to attach a NIC (or another backend bridge) to. */
  port(name = `port${this.count}`): SwitchPort {
    this.count++;
    const p = new SwitchPort(this, name);
    this.ports.push(p);
    return p;
  }

  /** The port a MAC (aa:bb:...) was learned on, if still fresh. */
  lookup(mac: string): SwitchPort | undefined {
    const bytes = Uint8Array.from(mac.split(':').map((x) => parseInt(x, 16)));
    return this.fresh(macKey(bytes, 0))?.port;
  }

  /** @internal */
  forward(from: SwitchPort, frame: Uint8Array): void {
    if (frame.length < 14) {
      this.stats.runts++;
      return;
    }
    const now = this.now();
    // Learn the source unless it is a group address.
    if ((frame[6]! & 1) === 0) this.table.set(macKey(frame, 6), { port: from, seen: now });
    if ((frame[0]! & 1) === 0) {
      const e = this.fresh(macKey(frame, 0));
      if (e !== undefined) {
        if (e.port === from) {
          this.stats.filtered++;
          return;
        }
        this.stats.forwarded++;
        e.port.egress(frame);
        return;
      }
    }
    this.stats.flooded++;
    for (const p of this.ports.slice()) if (p !== from) p.egress(frame);
  }

  private fresh(key: number): Entry | undefined {
    const e = this.table.get(key);
    if (e === undefined) return undefined;
    if (this.ageingMs > 0 && this.now() - e.seen > this.ageingMs) {
      this.table.delete(key);
      return undefined;
    }
    return e;
  }

  /** @internal */
  remove(port: SwitchPort): void {
    const i = this.ports.indexOf(port);
    if (i >= 0) this.ports.splice(i, 1);
    for (const [k, e] of this.table) if (e.port === port) this.table.delete(k);
  }

  /** Close every port. */
  close(): void {
    for (const p of this.ports.slice()) p.close();
    this.table.clear();
  }
}
