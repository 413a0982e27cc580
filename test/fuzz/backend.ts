// The NIC fuzzer's backend: takes frames (checking what the NIC hands it), sometimes takes
// LargeSend frames whole and sometimes refuses them, honours or ignores pause requests, and
// delivers frames from inside pollReceive (a host stack answering during the NIC's transmit).
import { BackendBase, type TcpSegmentation } from '../../lib/net/backend.js';
import { CP_MAX_TX_FRAME } from '../../lib/devices/rtl8139/index.js';
import type { Rng } from './rng.js';

/** The largest frame a NIC may hand over: a whole TX chain plus a VLAN tag it inserted. */
const MAX_FRAME = CP_MAX_TX_FRAME + 4;

export class FuzzBackend extends BackendBase {
  sent = 0;
  sentBytes = 0;
  segmented = 0;
  pauses = 0;
  resumes = 0;
  paused = false;
  /** Frames waiting for pollReceive or resumeReceive. */
  readonly held: Uint8Array[] = [];
  /** Contract breaches seen, reported by the fuzzer's check(). */
  readonly problems: string[] = [];

  constructor(private readonly rng: Rng) {
    super();
  }

  send(frame: Uint8Array): void {
    if (!(frame instanceof Uint8Array) || frame.length === 0 || frame.length > MAX_FRAME) {
      this.problems.push(`send() got a frame of ${frame?.length} bytes`);
      return;
    }
    this.sent++;
    this.sentBytes += frame.length;
  }

  sendSegmented(frame: Uint8Array, tso: TcpSegmentation): boolean {
    const { mss, l4Offset, headerLength, segments } = tso;
    const payload = frame.length - headerLength;
    if (!Number.isInteger(mss) || mss < 1 || !(l4Offset >= 14 && l4Offset < headerLength && headerLength <= frame.length) ||
      segments !== Math.max(1, Math.ceil(payload / mss)) || frame.length > MAX_FRAME) {
      this.problems.push(`sendSegmented(${frame.length} bytes, ${JSON.stringify(tso)})`);
    }
    if (!this.rng.chance(0.6)) return false;
    this.segmented++;
    return true;
  }

  pollReceive(): void {
    while (this.held.length > 0 && !this.paused && this.rng.chance(0.5)) this.deliver(this.held.shift()!);
  }

  pauseReceive(): void {
    if (this.paused) this.problems.push('pauseReceive() twice without resumeReceive()');
    this.paused = true;
    this.pauses++;
  }

  resumeReceive(): void {
    this.paused = false;
    this.resumes++;
    while (this.held.length > 0 && !this.paused) this.deliver(this.held.shift()!);
  }

  /** A frame from the wire: delivered, or held while paused (some backends cannot hold: 30%). */
  inject(frame: Uint8Array, later: boolean): void {
    if (later || (this.paused && this.rng.chance(0.7))) {
      if (this.held.length < 256) this.held.push(frame);
      return;
    }
    this.deliver(frame);
  }

  setCarrier(up: boolean): void {
    this.setLink(up);
  }
}
