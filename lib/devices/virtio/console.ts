// virtio-console with VIRTIO_CONSOLE_F_MULTIPORT (virtio 1.2 §5.3): named ports, each a pair
// of queues, announced to the driver over the control queues. Port ids start at 1 (port 0 is
// the console port in QEMU's numbering and stays unused), so the guest sees /dev/vport<d>p1…
//
// Queues: 0/1 port 0 receive/transmit, 2/3 control receive/transmit, then 2n+2 / 2n+3 for
// port n ≥ 1. "Receive" is device → driver (the host's writes), "transmit" driver → device.
import { InvalidArgumentError } from '../../errors.js';
import type { DescriptorChain } from './chain.js';
import { ConsolePort, type PortHost } from './console-port.js';
import type { VirtioDevice, VirtioDeviceContext } from './device.js';
import { bit, hasFeature } from './features.js';
import { VIRTIO_ID_CONSOLE } from './status.js';

export const VIRTIO_CONSOLE_F_SIZE = 0;
export const VIRTIO_CONSOLE_F_MULTIPORT = 1;
export const VIRTIO_CONSOLE_F_EMERG_WRITE = 2;

/** struct virtio_console_control events. */
export const VIRTIO_CONSOLE_DEVICE_READY = 0;
export const VIRTIO_CONSOLE_DEVICE_ADD = 1;
export const VIRTIO_CONSOLE_DEVICE_REMOVE = 2;
export const VIRTIO_CONSOLE_PORT_READY = 3;
export const VIRTIO_CONSOLE_CONSOLE_PORT = 4;
export const VIRTIO_CONSOLE_RESIZE = 5;
export const VIRTIO_CONSOLE_PORT_OPEN = 6;
export const VIRTIO_CONSOLE_PORT_NAME = 7;
/** id u32, event u16, value u16. */
export const VIRTIO_CONSOLE_CONTROL_SIZE = 8;

/** Config space: cols u16, rows u16, max_nr_ports u32, emerg_wr u32. */
export const VIRTIO_CONSOLE_CONFIG_SIZE = 12;

export const CONTROL_RX = 2;
export const CONTROL_TX = 3;
/** Queue sizes: Linux fills a receive queue with one page per entry. */
const DATA_QUEUE_SIZE = 256;
const CONTROL_QUEUE_SIZE = 64;

/** Names as QEMU's virtserialport accepts them, bounded so the control message fits a page. */
export const MAX_PORT_NAME = 255;
export const MAX_PORTS = 31;
/** Work one call does before yielding to the event loop. */
const BUDGET_BYTES = 1024 * 1024;
const BUDGET_CHAINS = 256;
/** Receive buffers the driver may post before it notifies, at most, while host data waits. */
const RECEIVE_NOTIFY_BATCH = 64;
/** A receive queue starved with host data waiting is looked at again after this long (ms). */
const RECEIVE_FALLBACK_MS = 100;
/** Control messages waiting for a guest buffer, at most (a guest that never reads them). */
const MAX_CONTROL_BACKLOG = 1024;

export interface VirtioConsoleCounters {
  /** Control messages from the driver that named no port, an unknown event, or were short. */
  badControl: number;
  /** Control messages to the driver dropped because the backlog was full. */
  controlDropped: number;
  /** Chains dropped for the wrong direction (e.g. a receive buffer the device may not write). */
  wrongDirection: number;
}

/** One virtio-console port (`Machine.create({ ports })`). */
export interface ConsolePortOptions {
  /** The name the guest sees in /sys/class/virtio-ports/vportNpM/name (1..255 bytes, no slash or control character). */
  name: string;
}

/** Validate port options; errors carry ERR_INVALID_PORT / ERR_DUPLICATE_PORT. */
export function validatePorts(ports: unknown): ConsolePortOptions[] {
  if (ports === undefined) return [];
  if (!Array.isArray(ports)) throw new InvalidArgumentError('ports must be an array of { name }', 'ERR_INVALID_PORT');
  if (ports.length > MAX_PORTS) throw new InvalidArgumentError(`at most ${MAX_PORTS} ports, got ${ports.length}`, 'ERR_INVALID_PORT');
  const seen = new Set<string>();
  return ports.map((p, i) => {
    const name = (p as { name?: unknown } | null)?.name;
    if (typeof name !== 'string' || name.length === 0) throw new InvalidArgumentError(`ports[${i}].name must be a non-empty string`, 'ERR_INVALID_PORT');
    if (Buffer.byteLength(name) > MAX_PORT_NAME) throw new InvalidArgumentError(`ports[${i}].name is longer than ${MAX_PORT_NAME} bytes`, 'ERR_INVALID_PORT');
    // Linux shows it in sysfs and as a /dev/virtio-ports/ link name: no slash, no control bytes.
    if (/[/\x00-\x1f\x7f]/.test(name)) throw new InvalidArgumentError(`ports[${i}].name ${JSON.stringify(name)} has a slash or a control character`, 'ERR_INVALID_PORT');
    if (seen.has(name)) throw new InvalidArgumentError(`port name "${name}" is used twice`, 'ERR_DUPLICATE_PORT');
    seen.add(name);
    return { name };
  });
}

export function receiveQueueOf(id: number): number { return id === 0 ? 0 : 2 * id + 2; }
export function transmitQueueOf(id: number): number { return id === 0 ? 1 : 2 * id + 3; }

export class VirtioConsole implements VirtioDevice, PortHost {
  readonly deviceType = VIRTIO_ID_CONSOLE;
  readonly features = bit(VIRTIO_CONSOLE_F_MULTIPORT);
  readonly queueMaxSizes: readonly number[];
  readonly configSize = VIRTIO_CONSOLE_CONFIG_SIZE;
  /** Linux sends each control message and then spins until it is used. */
  readonly synchronousQueues = [CONTROL_TX];
  readonly counters: VirtioConsoleCounters = { badControl: 0, controlDropped: 0, wrongDirection: 0 };
  /** Ports by id (index 0 unused). */
  private readonly ports: Array<ConsolePort | undefined>;
  private readonly byName = new Map<string, ConsolePort>();
  private readonly maxNrPorts: number;
  private ctx!: VirtioDeviceContext;
  /** Control messages for the driver, waiting for control receive buffers. */
  private controlOut: Buffer[] = [];

  constructor(ports: readonly ConsolePortOptions[]) {
    const list = validatePorts(ports);
    this.maxNrPorts = list.length + 1;
    this.ports = [undefined, ...list.map((p, i) => new ConsolePort(i + 1, p.name, this))];
    for (const p of this.ports) if (p !== undefined) this.byName.set(p.name, p);
    const sizes: number[] = [];
    for (let id = 0; id < this.maxNrPorts; id++) {
      sizes.push(DATA_QUEUE_SIZE, DATA_QUEUE_SIZE);
      if (id === 0) sizes.push(CONTROL_QUEUE_SIZE, CONTROL_QUEUE_SIZE);
    }
    this.queueMaxSizes = sizes;
  }

  /** The port named `name`, or undefined. */
  port(name: string): ConsolePort | undefined {
    return this.byName.get(name);
  }

  get portNames(): string[] {
    return [...this.byName.keys()];
  }

  attach(ctx: VirtioDeviceContext): void {
    this.ctx = ctx;
  }

  readConfig(offset: number, size: number): number {
    const b = Buffer.alloc(VIRTIO_CONSOLE_CONFIG_SIZE);
    b.writeUInt32LE(this.maxNrPorts, 4);
    let v = 0;
    for (let i = size - 1; i >= 0; i--) v = v * 256 + (b[offset + i] ?? 0);
    return v;
  }

  writeConfig(): void {
    // cols/rows/max_nr_ports are the device's; emerg_wr is not offered.
  }

  activate(): void {
    // The driver announces itself with DEVICE_READY on the control queue.
  }

  reset(): void {
    this.controlOut = [];
    for (const p of this.ports) p?.deviceReset();
  }

  private get multiport(): boolean {
    return hasFeature(this.ctx.negotiatedFeatures, VIRTIO_CONSOLE_F_MULTIPORT);
  }

  queueNotify(index: number): boolean {
    if (index === CONTROL_TX) return this.handleControl();
    if (index === CONTROL_RX) return this.flushControl();
    const id = index < 2 ? 0 : (index >> 1) - 1;
    const port = this.ports[id];
    if (port === undefined) return this.discard(index);
    return index % 2 === 0 ? this.receive(port) : this.transmit(port);
  }

  // --- PortHost ---

  wantReceive(port: ConsolePort): void {
    if (this.ctx.driverOk) this.ctx.schedule(receiveQueueOf(port.id));
  }

  wantTransmit(port: ConsolePort): void {
    if (this.ctx.driverOk) this.ctx.schedule(transmitQueueOf(port.id));
  }

  hostConnection(port: ConsolePort, open: boolean): void {
    if (port.guestReady) this.sendControl(port.id, VIRTIO_CONSOLE_PORT_OPEN, open ? 1 : 0);
  }

  // --- control queues ---

  private sendControl(id: number, event: number, value: number, extra?: Buffer): void {
    if (this.controlOut.length >= MAX_CONTROL_BACKLOG) {
      this.counters.controlDropped++;
      return;
    }
    const m = Buffer.alloc(VIRTIO_CONSOLE_CONTROL_SIZE + (extra?.length ?? 0));
    m.writeUInt32LE(id, 0);
    m.writeUInt16LE(event, 4);
    m.writeUInt16LE(value, 6);
    extra?.copy(m, VIRTIO_CONSOLE_CONTROL_SIZE);
    this.controlOut.push(m);
    this.ctx.schedule(CONTROL_RX);
  }

  /** Put waiting control messages into the driver's control receive buffers. */
  private flushControl(): boolean {
    const q = this.ctx.queue(CONTROL_RX);
    let sent = false;
    let chains = 0;
    while (this.controlOut.length > 0 && chains < BUDGET_CHAINS) {
      const c = q.pop();
      if (c === undefined) break;
      chains++;
      const m = this.controlOut[0]!;
      if (c.writableLength < m.length) {
        this.counters.wrongDirection++;
        q.drop(c);
        sent = true;
        continue;
      }
      this.controlOut.shift();
      q.push(c, c.write(m));
      sent = true;
    }
    if (sent) q.notify();
    return this.controlOut.length > 0 && q.pending() > 0;
  }

  private handleControl(): boolean {
    const q = this.ctx.queue(CONTROL_TX);
    let any = false;
    let chains = 0;
    for (; chains < BUDGET_CHAINS; chains++) {
      const c = q.pop();
      if (c === undefined) break;
      const msg = c.read(0, VIRTIO_CONSOLE_CONTROL_SIZE);
      q.push(c, 0);
      any = true;
      if (msg.length < VIRTIO_CONSOLE_CONTROL_SIZE) {
        this.counters.badControl++;
        continue;
      }
      this.control(msg.readUInt32LE(0), msg.readUInt16LE(4), msg.readUInt16LE(6));
    }
    if (any) q.notify();
    return chains >= BUDGET_CHAINS;
  }

  private control(id: number, event: number, value: number): void {
    if (event === VIRTIO_CONSOLE_DEVICE_READY) {
      if (value !== 1 || !this.multiport) return;
      for (const p of this.ports) if (p !== undefined) this.sendControl(p.id, VIRTIO_CONSOLE_DEVICE_ADD, 1);
      return;
    }
    const port = id < this.ports.length ? this.ports[id] : undefined;
    if (port === undefined) {
      this.counters.badControl++;
      return;
    }
    switch (event) {
      case VIRTIO_CONSOLE_PORT_READY:
        if (value !== 1) return; // the driver could not add it
        port.guestReady = true;
        this.sendControl(port.id, VIRTIO_CONSOLE_PORT_NAME, 1, Buffer.from(port.name));
        this.sendControl(port.id, VIRTIO_CONSOLE_PORT_OPEN, port.hostOpen ? 1 : 0);
        return;
      case VIRTIO_CONSOLE_PORT_OPEN:
        if (value === 1) port.guestOpened();
        else port.guestClosed();
        return;
      default:
        this.counters.badControl++;
    }
  }

  // --- data queues ---

  /** Host → guest: fill the port's receive buffers with what the host wrote. */
  private receive(port: ConsolePort): boolean {
    const q = this.ctx.queue(receiveQueueOf(port.id));
    let bytes = 0;
    let chains = 0;
    let used = false;
    let starved = false;
    while (bytes < BUDGET_BYTES && chains < BUDGET_CHAINS) {
      const data = port.peekToGuest(BUDGET_BYTES - bytes);
      if (data === undefined) break;
      const c = q.pop();
      if (c === undefined) {
        starved = true;
        break;
      }
      chains++;
      used = true;
      if (c.writableLength === 0) {
        this.wrongDirection(q, c);
        continue;
      }
      // One buffer takes as many host writes as fit: a frame header written on its own must
      // not cost the guest a buffer and a read() of its own.
      let n = 0;
      let piece: Buffer | undefined = data;
      while (piece !== undefined && piece.length > 0) {
        const k = c.write(piece, n);
        if (k === 0) break;
        port.consumedToGuest(k);
        n += k;
        piece = port.peekToGuest(BUDGET_BYTES - bytes - n);
      }
      q.push(c, n);
      bytes += n;
    }
    if (used) q.notify();
    const waiting = port.peekToGuest(1) !== undefined;
    if (waiting && !starved) return true; // the budget ran out first
    return this.moderateReceive(port, q, waiting);
  }

  /**
   * How often the driver should notify the port's receive queue (each notification is a guest
   * exit and an event-loop turn for us; Linux re-posts one page per read(), so one each would
   * cost a turn per 4 KiB). With no host data waiting, new buffers need no word: a host write
   * looks at the queue itself (wantReceive). With data waiting and no buffer left, every
   * buffer the guest holds was filled by us, and Linux's driver posts each again once read:
   * a quarter of them is a notification it will send, while it still holds data to read. The
   * fallback poll covers a driver that holds fewer. Returns whether to look again at once.
   */
  private moderateReceive(port: ConsolePort, q: ReturnType<VirtioDeviceContext['queue']>, waiting: boolean): boolean {
    if (!q.ready) return false; // DRIVER_OK, or the driver's first notification, brings us back
    if (!waiting) {
      q.notifyAfter(q.size);
      return false;
    }
    const held = q.size - q.pending();
    if (q.notifyAfter(Math.min(RECEIVE_NOTIFY_BATCH, held >> 2))) return true;
    this.ctx.scheduleAfter(receiveQueueOf(port.id), RECEIVE_FALLBACK_MS);
    return false;
  }

  /** Guest → host: take the port's transmit buffers while the host stream wants data. */
  private transmit(port: ConsolePort): boolean {
    const q = this.ctx.queue(transmitQueueOf(port.id));
    let bytes = 0;
    let chains = 0;
    let used = false;
    let more = port.wantsGuestData;
    while (more && bytes < BUDGET_BYTES && chains < BUDGET_CHAINS) {
      const c = q.pop();
      if (c === undefined) break;
      chains++;
      used = true;
      const data = c.read();
      q.push(c, 0);
      bytes += data.length;
      if (data.length > 0) more = port.fromGuest(data);
    }
    if (used) q.notify();
    if (q.pending() === 0) port.transmitDrained();
    return more && (bytes >= BUDGET_BYTES || chains >= BUDGET_CHAINS);
  }

  /** Buffers on queues of ports that do not exist (port 0): returned unused. */
  private discard(index: number): boolean {
    const q = this.ctx.queue(index);
    let n = 0;
    while (n < BUDGET_CHAINS) {
      const c = q.pop();
      if (c === undefined) break;
      q.drop(c);
      n++;
    }
    if (n > 0) q.notify();
    return n >= BUDGET_CHAINS;
  }

  private wrongDirection(q: ReturnType<VirtioDeviceContext['queue']>, c: DescriptorChain): void {
    this.counters.wrongDirection++;
    q.drop(c);
  }

  /** The guest is gone: host streams get EOF and their queued writes fail (ERR_MACHINE_ENDED). */
  machineEnded(reason: string): void {
    for (const p of this.ports) p?.machineEnded(reason);
  }

  saveState(): unknown {
    return {
      controlOut: this.controlOut.map((b) => b.toString('base64')),
      ports: this.ports.map((p) => p?.saveState() ?? null),
    };
  }

  loadState(state: unknown): void {
    const s = state as { controlOut: string[]; ports: Array<ReturnType<ConsolePort['saveState']> | null> };
    this.controlOut = s.controlOut.map((b) => Buffer.from(b, 'base64'));
    s.ports.forEach((ps, i) => { if (ps !== null) this.ports[i]?.loadState(ps); });
  }
}
