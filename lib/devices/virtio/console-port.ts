// One named port of the virtio console, host side: a Node Duplex whose readable side carries
// what the guest writes to /dev/vportNpM and whose writable side feeds the guest's reads.
//
// Flow control both ways: guest data is taken from the port's transmit queue only while the
// stream wants more (readable buffer below its high-water mark), so a host that stops reading
// leaves the guest's buffers unconsumed and the guest writer blocks; host writes complete only
// once their bytes sit in buffers the guest gave us, so a guest that does not read makes the
// host's write() return false and its callbacks wait.
import { Duplex } from 'node:stream';
import { NodeKvmError } from '../../errors.js';

/** Errors a port stream ends with. */
export class PortError extends NodeKvmError {}

/** What a port needs from the console device. */
export interface PortHost {
  /** Host data is waiting for guest buffers: look at the port's receive queue. */
  wantReceive(port: ConsolePort): void;
  /** The host wants guest data again: look at the port's transmit queue. */
  wantTransmit(port: ConsolePort): void;
  /** The host side opened or closed: tell the guest (VIRTIO_CONSOLE_PORT_OPEN). */
  hostConnection(port: ConsolePort, open: boolean): void;
}

export interface ConsolePortCounters {
  /** Bytes guest → host and host → guest. */
  fromGuest: number;
  toGuest: number;
  /** Times the guest's writes were held because the host was not reading (flood bound). */
  guestHeld: number;
  /** Host bytes discarded because the guest closed the port with them still queued. */
  toGuestDropped: number;
}

interface Pending {
  data: Buffer;
  offset: number;
  done: (err?: Error | null) => void;
}

/** The readable high-water mark: at most this much guest data waits in the host's stream. */
const READ_HWM = 256 * 1024;

export class ConsolePort {
  readonly id: number;
  readonly name: string;
  /** The guest has the port open (VIRTIO_CONSOLE_PORT_OPEN 1 from the driver). */
  guestOpen = false;
  /** The guest ever opened it since the device was reset. */
  private guestEverOpen = false;
  /** The driver said PORT_READY: it knows the port and may be told its name. */
  guestReady = false;
  readonly counters: ConsolePortCounters = { fromGuest: 0, toGuest: 0, guestHeld: 0, toGuestDropped: 0 };
  private stream: PortStream | undefined;
  private readonly pending: Pending[] = [];
  /** The guest closed; end the readable side once its transmit queue is drained. */
  private guestClosing = false;

  constructor(id: number, name: string, private readonly host: PortHost) {
    this.id = id;
    this.name = name;
  }

  /** Whether the host side counts as connected (no stream yet, or a stream not ended). */
  get hostOpen(): boolean {
    return this.stream === undefined || !this.stream.hostEnded;
  }

  /** The host's stream. A second open while one is live is refused (ERR_PORT_BUSY). */
  open(): Duplex {
    if (this.stream !== undefined && !this.stream.finished) {
      throw new PortError('ERR_PORT_BUSY', `port "${this.name}" is already open on the host; end or destroy that stream first`);
    }
    const wasOpen = this.hostOpen;
    this.stream = new PortStream(this);
    if (!wasOpen) this.host.hostConnection(this, true);
    return this.stream;
  }

  // --- guest → host ---

  /** Whether guest data should be taken now. */
  get wantsGuestData(): boolean {
    const s = this.stream;
    if (s === undefined || s.destroyed || s.readableEnded || s.pushedEof) return false;
    return s.readableLength < READ_HWM;
  }

  /** Guest data from one transmit buffer. Returns whether more is welcome. */
  fromGuest(data: Buffer): boolean {
    const s = this.stream!;
    this.counters.fromGuest += data.length;
    const more = s.push(data);
    if (!more) this.counters.guestHeld++;
    return more && s.readableLength < READ_HWM;
  }

  /** The transmit queue has nothing more for now: end the readable side if the guest closed. */
  transmitDrained(): void {
    if (!this.guestClosing) return;
    this.guestClosing = false;
    this.stream?.pushEof();
  }

  // --- host → guest ---

  /** Next host bytes for the guest (at most `max`), or undefined. */
  peekToGuest(max: number): Buffer | undefined {
    if (!this.guestOpen) return undefined;
    const p = this.pending[0];
    if (p === undefined) return undefined;
    return p.data.subarray(p.offset, Math.min(p.data.length, p.offset + max));
  }

  /** `n` bytes of what peekToGuest returned went into guest buffers. */
  consumedToGuest(n: number): void {
    const p = this.pending[0]!;
    p.offset += n;
    this.counters.toGuest += n;
    if (p.offset >= p.data.length) {
      this.pending.shift();
      p.done();
    }
  }

  /** Called by the stream's _write. */
  enqueue(data: Buffer, done: (err?: Error | null) => void): void {
    if (!this.guestOpen && this.guestEverOpen) {
      done(closedError(this.name));
      return;
    }
    if (data.length === 0) {
      done();
      return;
    }
    this.pending.push({ data, offset: 0, done });
    this.host.wantReceive(this);
  }

  get pendingToGuest(): number {
    let n = 0;
    for (const p of this.pending) n += p.data.length - p.offset;
    return n;
  }

  // --- guest port state (control messages) ---

  guestOpened(): void {
    this.guestOpen = true;
    this.guestEverOpen = true;
    this.guestClosing = false;
    this.host.wantReceive(this);
    this.host.wantTransmit(this);
  }

  /** The guest closed the port (or the device was reset): fail queued host writes, then EOF. */
  guestClosed(): void {
    if (!this.guestOpen) return;
    this.guestOpen = false;
    this.guestClosing = true;
    const err = closedError(this.name);
    for (const p of this.pending.splice(0)) {
      this.counters.toGuestDropped += p.data.length - p.offset;
      p.done(err);
    }
    this.host.wantTransmit(this);
  }

  /** Device reset: the driver forgets the port; the host stream sees a guest close. */
  deviceReset(): void {
    this.guestReady = false;
    this.guestClosed();
    this.guestEverOpen = false;
  }

  machineEnded(reason: string): void {
    this.guestOpen = false;
    this.guestEverOpen = true;
    const err = new PortError('ERR_MACHINE_ENDED', reason);
    for (const p of this.pending.splice(0)) {
      this.counters.toGuestDropped += p.data.length - p.offset;
      p.done(err);
    }
    this.stream?.pushEof();
  }

  // --- called by the stream ---

  /** @internal */
  streamRead(): void {
    this.host.wantTransmit(this);
  }

  /** @internal the stream's writable side finished (end() flushed) or it was destroyed. */
  streamHostClosed(s: PortStream): void {
    if (s !== this.stream) return;
    for (const p of this.pending.splice(0)) {
      this.counters.toGuestDropped += p.data.length - p.offset;
      p.done(new PortError('ERR_STREAM_DESTROYED', 'stream destroyed'));
    }
    this.host.hostConnection(this, false);
  }

  saveState(): { guestOpen: boolean; guestEverOpen: boolean; guestReady: boolean } {
    return { guestOpen: this.guestOpen, guestEverOpen: this.guestEverOpen, guestReady: this.guestReady };
  }

  loadState(s: { guestOpen: boolean; guestEverOpen: boolean; guestReady: boolean }): void {
    this.guestOpen = s.guestOpen;
    this.guestEverOpen = s.guestEverOpen;
    this.guestReady = s.guestReady;
  }
}

function closedError(name: string): PortError {
  return new PortError('ERR_PORT_CLOSED', `the guest closed port "${name}"`);
}

class PortStream extends Duplex {
  /** end() completed (all host data delivered) or the stream was destroyed. */
  hostEnded = false;
  pushedEof = false;

  constructor(private readonly port: ConsolePort) {
    super({ readableHighWaterMark: READ_HWM, writableHighWaterMark: 256 * 1024 });
  }

  /** Both directions done: the port may be opened again. */
  get finished(): boolean {
    return this.destroyed || (this.hostEnded && this.pushedEof);
  }

  pushEof(): void {
    if (this.pushedEof) return;
    this.pushedEof = true;
    this.push(null);
  }

  override _read(): void {
    this.port.streamRead();
  }

  override _write(chunk: Buffer, _enc: BufferEncoding, cb: (err?: Error | null) => void): void {
    this.port.enqueue(chunk, cb);
  }

  override _final(cb: (err?: Error | null) => void): void {
    this.hostEnded = true;
    this.port.streamHostClosed(this);
    cb();
  }

  override _destroy(err: Error | null, cb: (err?: Error | null) => void): void {
    if (!this.hostEnded) {
      this.hostEnded = true;
      this.port.streamHostClosed(this);
    }
    cb(err);
  }
}
