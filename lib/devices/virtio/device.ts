// The device side of virtio: what a device (console, 9p, later block and net) implements, and
// what the transport gives it. The transport (pci-transport.ts) owns feature negotiation,
// device status, queue configuration, notifications and interrupts; the device sees only
// negotiated features, its config space and ready queues.
import type { Virtqueue } from './virtqueue.js';

/** What the transport hands a device when it is plugged in. */
export interface VirtioDeviceContext {
  /** Queue `index` (0-based, < queueMaxSizes.length). */
  queue(index: number): Virtqueue;
  /** The features the driver accepted (valid once FEATURES_OK is set). */
  readonly negotiatedFeatures: bigint;
  /** Whether the driver finished initialisation (DRIVER_OK) and the device is not in reset. */
  readonly driverOk: boolean;
  /** The device's config space changed: raise the configuration-change interrupt. */
  configChanged(): void;
  /** The device cannot go on (§2.1.2): sets DEVICE_NEEDS_RESET and tells the driver. */
  needsReset(reason: string): void;
  /**
   * Call queueNotify(index) again on a later event-loop turn, e.g. when host data arrived for a
   * queue the device had nothing to do on, or when it stopped early to bound its work.
   */
  schedule(index: number): void;
  /**
   * schedule(index) after `ms` unless the queue is notified or scheduled first: a fallback for
   * a device that asked the driver for fewer notifications (Virtqueue.notifyAfter).
   */
  scheduleAfter(index: number, ms: number): void;
}

export interface VirtioDevice {
  /** Device type id (§5): 3 console, 9 9p… The PCI device id is 0x1040 + this. */
  readonly deviceType: number;
  /** Device-specific feature bits offered (the transport adds VERSION_1, EVENT_IDX, INDIRECT_DESC). */
  readonly features: bigint;
  /** Maximum size of each queue (a power of two ≤ 32768); the length is the number of queues. */
  readonly queueMaxSizes: readonly number[];
  /** Bytes of device-specific config space. */
  readonly configSize: number;
  /**
   * Queues whose notifications the driver waits on by spinning (e.g. virtio-console's control
   * transmit queue: Linux busy-waits for each control message to be used). Their notify writes
   * exit to us and are handled inside that exit (bounded), instead of going through the
   * doorbell and the event loop. Optional; default none.
   */
  readonly synchronousQueues?: readonly number[];

  /** Plugged into a transport. Called once, before anything else. */
  attach(ctx: VirtioDeviceContext): void;
  /** Driver reads `size` (1, 2 or 4) bytes at `offset` of the device config space. */
  readConfig(offset: number, size: number): number;
  /** Driver writes config space (most devices ignore it). */
  writeConfig(offset: number, size: number, value: number): void;
  /** The driver set DRIVER_OK: negotiated features and queues are final. */
  activate(): void;
  /**
   * The driver notified queue `index` (or the device asked for it with schedule()). Handle at
   * most a bounded amount of work; return true when work is left, and the transport calls again
   * on a later event-loop turn.
   */
  queueNotify(index: number): boolean | void;
  /** Device reset by the driver (status 0) or the machine: drop in-flight requests. */
  reset(): void;
  /** JSON-serialisable device state (queue state is saved by the transport). */
  saveState(): unknown;
  loadState(state: unknown): void;
}
