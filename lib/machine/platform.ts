// The node-kvm PC: which device sits on which port/address/IRQ. Devices know nothing of the
// machine; this file wires them to the buses and to the machine's lifecycle callbacks.
import type { Clock, DmaMemory, IrqLine } from '../bus/device.js';
import { MmioBus, PioBus } from '../bus/bus.js';
import { WiredOrIrqLine } from '../bus/irq.js';
import * as L from '../platform/layout.js';
import { AcpiPm, ACPI_PM_IO_LENGTH } from '../devices/acpi-pm.js';
import { Cmos, CMOS_IO_SIZE } from '../devices/cmos.js';
import { DebugExit, DEBUG_EXIT_IO_SIZE } from '../devices/debug-exit.js';
import { FwCfg, FW_CFG_IO_SIZE, buildE820File } from '../devices/fw-cfg.js';
import { I8042, I8042_IO_SIZE } from '../devices/i8042.js';
import { PciHostBridge, type BarMapper } from '../devices/pci/index.js';
import { Rtl8139, type DeviceTimers } from '../devices/rtl8139/index.js';
import { Sink } from '../devices/sink.js';
import { Uart16550, UART_IO_SIZE } from '../devices/uart16550.js';
import type { DeferWork } from '../devices/work-budget.js';
import { VirtioConsole, type ConsolePortOptions } from '../devices/virtio/console.js';
import type { MsiSink } from '../devices/virtio/msix.js';
import { VirtioPciDevice, type Doorbell } from '../devices/virtio/pci-transport.js';
import { Virtio9p } from '../devices/virtio/9p/device.js';
import type { P9Server } from '../devices/virtio/9p/server.js';
import type { GuestMemory } from '../kvm/memory.js';
import type { E820Entry } from '../boot/e820.js';
import type { NetOptions } from './options.js';

/** Why a machine ended: the guest powered off, rebooted, wrote the debug-exit port, triple-faulted ('shutdown'), an error, or stop(). */
export type EndReason = 'poweroff' | 'reboot' | 'debug-exit' | 'shutdown' | 'error' | 'stopped';

export interface PlatformHooks {
  irq(gsi: number): IrqLine;
  /** The guest asked to end: poweroff (ACPI S5), reboot (i8042, 0xCF9, ACPI reset), debug-exit. */
  end(reason: EndReason, code: number, detail?: string): void;
  consoleByte(byte: number): void;
  consoleRxSpace(): void;
  /** Queue guest writes to [addr, addr+size) instead of exiting on each (see BarMapper.coalesce). */
  coalesce?(kind: 'io' | 'mmio', addr: number, size: number, on: boolean): void;
  /** Where devices put work left over from a turn's budget (lib/devices/work-budget.ts). */
  deferWork?: DeferWork;
  /** MSI delivery for PCI functions with MSI-X (KVM_SIGNAL_MSI). */
  msi?: MsiSink;
  /** Doorbells for virtio notifications (KVM_IOEVENTFD); without them notifications exit. */
  doorbell?(onRing: () => void): Doorbell;
  /** Device work was queued with setImmediate: have the run loop yield soon. */
  wake?(): void;
}

export interface PlatformConfig {
  /** Guest RAM as the NICs' DMA sees it. */
  memory: DmaMemory;
  memoryBelow4g: number;
  memoryAbove4g: number;
  cpus: number;
  comPorts: number;
  net: NetOptions[];
  /** Time for the devices (default the host's monotonic clock); tests inject a fake one. */
  clock?: Clock;
  /** The NICs' timers (default unref'd host timeouts). */
  timers?: DeviceTimers;
  /** virtio-console ports (none: no virtio-console device). */
  ports?: ConsolePortOptions[];
  /** 9P servers of the shares, one virtio-9p device each. */
  shares?: P9Server[];
}

const hostClock = { nowNs: (): bigint => process.hrtime.bigint() };

export class Platform {
  readonly pio = new PioBus();
  readonly mmio = new MmioBus();
  readonly uarts: Uart16550[] = [];
  readonly i8042: I8042;
  readonly cmos: Cmos;
  readonly debugExit: DebugExit;
  readonly fwCfg: FwCfg;
  readonly acpiPm: AcpiPm;
  readonly pci: PciHostBridge;
  readonly nics: Rtl8139[] = [];
  /** The virtio-console (multiport) when ports were asked for, and its PCI function. */
  readonly virtioConsole: VirtioConsole | undefined;
  readonly virtioPci: VirtioPciDevice[] = [];
  readonly virtio9p: Virtio9p[] = [];

  constructor(cfg: PlatformConfig, hooks: PlatformHooks) {
    const { pio, mmio } = this;
    const clock = cfg.clock ?? hostClock;
    // COM1/COM3 share IRQ 4 and COM2/COM4 IRQ 3: each line is up while any of its UARTs has
    // an interrupt pending, or one port going quiet would drop the other's interrupt.
    const comIrqs = new Map<number, WiredOrIrqLine>();
    const comIrq = (irq: number): IrqLine => {
      let line = comIrqs.get(irq);
      if (line === undefined) comIrqs.set(irq, (line = new WiredOrIrqLine(hooks.irq(irq))));
      return line.source();
    };
    for (let i = 0; i < cfg.comPorts; i++) {
      const uart = new Uart16550({
        irq: comIrq(L.IRQ_COM[i]!),
        // Only COM1 is the console; COM2-4 exist for guests that probe or use them.
        onTransmit: i === 0 ? hooks.consoleByte : () => {},
        onRxSpace: i === 0 ? hooks.consoleRxSpace : undefined,
      });
      pio.register(L.PORT_COM[i]!, UART_IO_SIZE, uart, `com${i + 1}`);
      this.uarts.push(uart);
    }
    this.i8042 = new I8042({
      irq: hooks.irq(L.IRQ_I8042_KBD),
      onReset: () => hooks.end('reboot', 0, 'i8042 CPU reset line'),
    });
    pio.register(L.PORT_I8042_DATA, I8042_IO_SIZE, this.i8042, 'i8042');
    this.cmos = new Cmos({ memoryBelow4g: cfg.memoryBelow4g, memoryAbove4g: cfg.memoryAbove4g });
    pio.register(L.PORT_CMOS_INDEX, CMOS_IO_SIZE, this.cmos, 'cmos');
    this.debugExit = new DebugExit({ onExit: (code) => hooks.end('debug-exit', code) });
    pio.register(L.PORT_DEBUG_EXIT, DEBUG_EXIT_IO_SIZE, this.debugExit, 'debug-exit');
    this.fwCfg = new FwCfg({ cpus: cfg.cpus });
    pio.register(L.PORT_FW_CFG, FW_CFG_IO_SIZE, this.fwCfg, 'fw-cfg');
    this.acpiPm = new AcpiPm({
      clock,
      sci: hooks.irq(L.IRQ_SCI),
      onSleep: (state) => {
        if (state === 'S5') hooks.end('poweroff', 0, 'ACPI S5');
      },
      onReset: () => hooks.end('reboot', 0, 'ACPI reset register'),
    });
    pio.register(L.PORT_ACPI_PM1A_EVT, ACPI_PM_IO_LENGTH, this.acpiPm, 'acpi-pm');
    // POST codes and Linux's io_delay port: accepted and ignored, not counted as misses.
    pio.register(L.PORT_POST, 1, new Sink(), 'post');
    pio.register(0xed, 1, new Sink(), 'io-delay');

    const mapper: BarMapper = {
      map: (kind, base, length, device, name) => (kind === 'io' ? pio : mmio).register(base, length, device, name),
      unmap: (kind, device) => { (kind === 'io' ? pio : mmio).unregister(device); },
      ...(hooks.coalesce !== undefined ? { coalesce: hooks.coalesce } : {}),
    };
    this.pci = new PciHostBridge({
      mapper,
      ioWindow: { start: L.PCI_IO_START, end: L.PCI_IO_END },
      mmioWindow: { start: L.PCI_MMIO_START, end: L.PCI_MMIO_END },
      intxGsi: L.pciIntxGsi,
      irqForGsi: (gsi) => hooks.irq(gsi),
      onReset: () => hooks.end('reboot', 0, 'PCI reset control register'),
    });
    pio.register(L.PORT_PCI_CONFIG_ADDRESS, 8, this.pci, 'pci');
    cfg.net.forEach((n, i) => {
      const nic = new Rtl8139({
        mem: cfg.memory, clock, ...(cfg.timers !== undefined ? { timers: cfg.timers } : {}), revision: n.revision ?? 0x20,
        ...(hooks.deferWork !== undefined ? { defer: hooks.deferWork } : {}),
        mac: n.mac ?? `52:54:00:12:34:${(0x56 + i).toString(16).padStart(2, '0')}`,
      });
      this.pci.addDevice(nic);
      this.nics.push(nic);
    });
    // Every virtio device gets the same transport, wired to KVM's MSI, doorbells and wake-ups.
    const plugVirtio = (dev: ConstructorParameters<typeof VirtioPciDevice>[0]): void => {
      const fn = new VirtioPciDevice(dev, {
        mem: cfg.memory,
        ...(hooks.msi !== undefined ? { msi: hooks.msi } : {}),
        ...(hooks.doorbell !== undefined ? { doorbell: hooks.doorbell } : {}),
        ...(hooks.wake !== undefined ? { wake: hooks.wake } : {}),
      });
      this.pci.addDevice(fn);
      this.virtioPci.push(fn);
    };
    const ports = cfg.ports ?? [];
    if (ports.length > 0) {
      this.virtioConsole = new VirtioConsole(ports);
      plugVirtio(this.virtioConsole);
    }
    for (const server of cfg.shares ?? []) {
      const dev = new Virtio9p(server);
      plugVirtio(dev);
      this.virtio9p.push(dev);
    }
    this.pci.assignResources();
    cfg.net.forEach((n, i) => this.nics[i]!.attachBackend(n.backend));
  }

  /** Occupied PCI slots other than the host bridge (for the DSDT). */
  pciSlots(): number[] {
    return this.pci.devices().map(([slot]) => slot).filter((s) => s !== 0);
  }

  setE820(e820: readonly E820Entry[]): void {
    this.fwCfg.addFile('etc/e820', buildE820File(e820.map((e) => ({ addr: e.addr, size: e.size, type: e.type }))));
  }

  /** Send host input to the console UART; returns how many bytes it took. */
  consoleInput(bytes: Uint8Array): number {
    return this.uarts[0]!.enqueueInput(bytes);
  }

  /**
   * Quiesces the shares for a snapshot: no chain is popped from now on, and the requests
   * under way finish (they write into guest RAM and complete their chains). ERR_SNAPSHOT_BUSY
   * after `timeoutMs`; then call releaseShares().
   */
  async quiesceShares(timeoutMs: number): Promise<void> {
    for (const d of this.virtio9p) d.hold();
    await Promise.all(this.virtio9p.map((d) => d.drain(timeoutMs)));
  }

  /** Lets the shares pop chains again (after quiesceShares()). */
  releaseShares(): void {
    for (const d of this.virtio9p) d.release();
  }

  /** After a restore: reopens every share's fids (or marks them stale); resolves with the stale count. */
  async finishShareLoads(): Promise<number> {
    const n = await Promise.all(this.virtio9p.map((d) => d.finishLoad()));
    return n.reduce((a, b) => a + b, 0);
  }

  /** Waits for the shares' requests under way (they write into guest RAM), then closes them. */
  async closeShares(): Promise<void> {
    await Promise.all(this.virtio9p.map((d) => d.close()));
  }

  close(): void {
    for (const nic of this.nics) nic.close();
    for (const fn of this.virtioPci) fn.close();
  }
}
