// The machine's buses as the guest sees them: a real Platform (the devices, ports and PCI slots
// Machine.create builds) over checked RAM, driven through its PIO and MMIO buses. The PCI host
// bridge gets most of it (CONFIG_ADDRESS/CONFIG_DATA at every width, BAR sizing and moves,
// including onto legacy ports and each other, command-register decode and INTx-disable, the
// reset control register); the rest goes to the NICs at wherever their BARs are decoded now
// and to random ports across the whole I/O space.
//
// Invariants after every operation: no DMA outside RAM; each interrupt line (GSI) up exactly
// while one of the devices wired to it has an interrupt pending (PCI INTx and the COM ports'
// shared IRQs 3 and 4 are the OR of their devices); every
// BAR the device says is decoded is on its bus at that address, routing to the device; the
// legacy devices keep their ports.
import { RecordingIrqLine } from '../../../lib/bus/irq.js';
import * as L from '../../../lib/platform/layout.js';
import { PCI_COMMAND, PCI_COMMAND_INTX_DISABLE } from '../../../lib/devices/pci/config-space.js';
import { regs as R, type Rtl8139 } from '../../../lib/devices/rtl8139/index.js';
import { Platform, type EndReason } from '../../../lib/machine/platform.js';
import { FuzzBackend } from '../backend.js';
import { uartInterruptPending } from './uart.js';
import { FakeClock, FakeTimers } from '../clock.js';
import { CheckedMemory } from '../dma.js';
import { wireFrame } from '../frames.js';
import { checkReadValue, type FuzzInstance, type FuzzTarget } from '../harness.js';
import type { Rng } from '../rng.js';

const RAM = [{ guestPhysAddr: 0, size: 0x20000 }] as const;
const CONFIG_ADDRESS = L.PORT_PCI_CONFIG_ADDRESS;
const CONFIG_DATA = L.PORT_PCI_CONFIG_DATA;
/** Ports a BAR may be moved onto to collide with (legacy devices and the bridge itself). */
const LEGACY_PORTS = [0x60, 0x70, 0x80, 0xf4, 0x3f8, 0x2f8, 0x510, 0x600, 0x620, 0xcf8, 0xc000, 0xc100];

class PlatformFuzz implements FuzzInstance {
  op = 'none';
  private readonly mem = new CheckedMemory(RAM);
  private readonly clock = new FakeClock();
  private readonly timers = new FakeTimers(this.clock);
  /** Turns the NICs deferred (bounded work per exit); one runs between two operations. */
  private readonly deferred = new FakeTimers(this.clock);
  private readonly lines = new Map<number, RecordingIrqLine>();
  private readonly backends: FuzzBackend[] = [];
  private readonly platform: Platform;
  private readonly legacy: string;
  private readonly ends: Partial<Record<EndReason, number>> = {};
  private configAddress = 0;

  constructor(private readonly rng: Rng) {
    // Five NICs put two on one GSI (slots 1 and 5): the line must then be the OR of both.
    const nics = rng.pick([1, 2, 5]);
    for (let i = 0; i < nics; i++) this.backends.push(new FuzzBackend(rng));
    this.platform = new Platform({
      // COM1/COM3 share IRQ 4 and COM2/COM4 IRQ 3, as on a PC.
      memory: this.mem, memoryBelow4g: 0x20000, memoryAbove4g: 0, cpus: 1, comPorts: rng.range(1, 4),
      net: this.backends.map((backend, i) => ({ backend, revision: i % 2 === 0 ? 0x20 : 0x10 })),
      clock: this.clock, timers: this.timers,
    }, {
      irq: (gsi) => {
        let l = this.lines.get(gsi);
        if (l === undefined) this.lines.set(gsi, (l = new RecordingIrqLine()));
        return l;
      },
      end: (reason) => { this.ends[reason] = (this.ends[reason] ?? 0) + 1; },
      consoleByte: () => {},
      consoleRxSpace: () => {},
      // Where the NICs put work left over from a turn (issue 17 item 1, branch hard-net; a
      // Platform without the hook ignores it).
      ...({ deferWork: (callback: () => void) => this.deferred.schedule(0, callback) } as Record<string, unknown>),
    });
    this.legacy = this.legacyMap();
  }

  private legacyMap(): string {
    return this.platform.pio.devices.filter((r) => r.base < L.PCI_IO_START && !this.isBar(r.device)).map((r) => `${r.name}@${r.base.toString(16)}+${r.end - r.base}`).join(' ');
  }

  private isBar(d: unknown): boolean {
    return this.platform.nics.some((n) => n.ioBar === d || n.mmioBar === d);
  }

  private configAddressValue(): number {
    const r = this.rng;
    const enable = r.chance(0.95) ? 0x8000_0000 : 0;
    const bus = r.chance(0.95) ? 0 : r.u8();
    const slot = r.chance(0.9) ? r.int(this.platform.nics.length + 2) : r.int(32);
    const fn = r.chance(0.95) ? 0 : r.int(8);
    const reg = r.chance(0.7) ? r.pick([0x00, 0x04, 0x08, 0x0c, 0x10, 0x14, 0x18, 0x24, 0x30, 0x3c]) : r.u8();
    return (enable | (bus << 16) | (slot << 11) | (fn << 8) | reg) >>> 0;
  }

  private configValue(size: number): number {
    const r = this.rng;
    const reg = this.configAddress & 0xfc;
    if (reg === PCI_COMMAND && r.chance(0.7)) return (r.int(8) | (r.chance(0.3) ? PCI_COMMAND_INTX_DISABLE : 0)) >>> 0;
    if (reg >= 0x10 && reg < 0x28 && r.chance(0.8)) {
      const k = r.int(5);
      if (k === 0) return 0xffff_ffff; // sizing
      if (k === 1) return (r.pick(LEGACY_PORTS) | 1) >>> 0;
      if (k === 2) return (L.PCI_MMIO_START + 0x100 * r.int(64)) >>> 0;
      if (k === 3) return 0;
      return (L.PCI_IO_START + 0x100 * r.int(8)) | 1;
    }
    return r.value(size);
  }

  /** A NIC's register window at its current BAR (or nothing when it is not decoded). */
  private barAccess(nic: Rtl8139, write: boolean): void {
    const r = this.rng;
    const bar = r.int(2);
    const base = nic.barMappedAt(bar);
    const size = r.size();
    const off = r.chance(0.5) ? r.pick([R.IntrStatus, R.IntrMask, R.ChipCmd, R.RxConfig, R.CpCmd, R.TxPoll]) : r.int(0x100 - size + 1);
    if (base === undefined) {
      this.op = `NIC BAR${bar} access while not decoded`;
      return;
    }
    const bus = bar === 0 ? this.platform.pio : this.platform.mmio;
    if (write) {
      const v = off === R.IntrMask ? 0xffff : off === R.ChipCmd ? R.CmdRxEnb | R.CmdTxEnb : off === R.RxConfig ? 0x0f : r.value(size);
      this.op = `NIC BAR${bar} write(0x${(base + off).toString(16)}, ${size}, 0x${v.toString(16)})`;
      bus.write(base + off, size, v);
    } else {
      this.op = `NIC BAR${bar} read(0x${(base + off).toString(16)}, ${size})`;
      checkReadValue(bus.read(base + off, size), size, this.op);
    }
  }

  step(): void {
    const r = this.rng;
    const p = this.platform;
    this.deferred.runDue(); // a turn of the event loop between two guest actions
    const k = r.int(100);
    if (k < 15) {
      this.configAddress = this.configAddressValue();
      this.op = `CONFIG_ADDRESS = 0x${this.configAddress.toString(16)}`;
      p.pio.write(CONFIG_ADDRESS, 4, this.configAddress);
    } else if (k < 35) {
      const size = r.size();
      const off = size === 4 ? 0 : size === 2 ? 2 * r.int(2) : r.int(4);
      const v = this.configValue(size);
      this.op = `CONFIG_DATA+${off} write(${size}, 0x${v.toString(16)}) at 0x${this.configAddress.toString(16)}`;
      p.pio.write(CONFIG_DATA + off, size, v);
    } else if (k < 55) {
      const size = r.size();
      const off = size === 4 ? 0 : size === 2 ? 2 * r.int(2) : r.int(4);
      this.op = `CONFIG_DATA+${off} read(${size}) at 0x${this.configAddress.toString(16)}`;
      checkReadValue(p.pio.read(CONFIG_DATA + off, size), size, this.op);
    } else if (k < 58) {
      const size = r.size();
      const off = r.int(4);
      const write = r.chance(0.5);
      const v = off === 1 && size === 1 && r.chance(0.5) ? r.pick([0x02, 0x06, 0x0e]) : r.value(size);
      this.op = `0xcf8+${off} ${write ? `write(${size}, 0x${v.toString(16)})` : `read(${size})`}`;
      if (write) p.pio.write(CONFIG_ADDRESS + off, size, v);
      else checkReadValue(p.pio.read(CONFIG_ADDRESS + off, size), size, this.op);
    } else if (k < 78) {
      this.barAccess(r.pick(p.nics), r.chance(0.5));
    } else if (k < 86) {
      const i = r.int(this.backends.length);
      this.op = `frame for NIC ${i}`;
      this.backends[i]!.inject(wireFrame(r, p.nics[i]!.mac), r.chance(0.1));
    } else if (k < 94) {
      // Anywhere in the port space, mostly where devices are.
      const size = r.size();
      const port = Math.min(0x10000 - size, r.chance(0.7) ? r.pick([0x60, 0x61, 0x64, 0x70, 0x71, 0x80, 0xed, 0xf4, 0x3f8, 0x2f8, 0x3e8, 0x2e8, 0x3f8, 0x3e8, 0x510, 0x511, 0x600, 0x604, 0x608, 0x620, 0xcf8, 0xcfc, 0xc000, 0xc100]) + r.int(8) : r.u16());
      const write = r.chance(0.5);
      const v = r.value(size);
      this.op = `port 0x${port.toString(16)} ${write ? `write(${size}, 0x${v.toString(16)})` : `read(${size})`}`;
      if (write) p.pio.write(port, size, v);
      else checkReadValue(p.pio.read(port, size), size, this.op);
    } else if (k < 97) {
      const size = r.size();
      const addr = L.PCI_MMIO_START + r.int(0x4000);
      const write = r.chance(0.5);
      const v = r.value(size);
      this.op = `MMIO 0x${addr.toString(16)} ${write ? `write(${size}, 0x${v.toString(16)})` : `read(${size})`}`;
      if (write) p.mmio.write(addr, size, v);
      else checkReadValue(p.mmio.read(addr, size), size, this.op);
    } else {
      const ns = r.int(5_000_000);
      this.op = `clock +${ns} ns`;
      this.clock.advance(ns);
      this.timers.runDue();
    }
  }

  check(): void {
    this.mem.assertClean();
    const p = this.platform;
    for (const b of this.backends) if (b.problems.length > 0) throw new Error(`backend contract: ${b.problems.splice(0).join('; ')}`);
    // Each PCI GSI: the OR of its devices' INTx, from their registers.
    const want = new Map<number, boolean>();
    p.nics.forEach((nic, i) => {
      const slot = p.pci.devices().find(([, d]) => d === nic)![0];
      const gsi = p.pci.gsiOf(slot)!;
      const isr = nic.interruptStatus;
      const imr = nic.ioBar === undefined ? 0 : nic.mmioBar.read(R.IntrMask, 2);
      const intx = (isr & imr) !== 0 && (nic.readConfig(PCI_COMMAND, 2) & PCI_COMMAND_INTX_DISABLE) === 0;
      want.set(gsi, (want.get(gsi) ?? false) || intx);
      if (nic.intxAsserted !== intx) throw new Error(`NIC ${i}: intxAsserted ${nic.intxAsserted}, registers say ${intx}`);
    });
    // The COM ports' IRQs: the OR of the UARTs wired to each (an enabled source pending).
    p.uarts.forEach((u, i) => {
      const irq = L.IRQ_COM[i]!;
      want.set(irq, (want.get(irq) ?? false) || uartInterruptPending(u.saveState()));
    });
    for (const [gsi, level] of want) {
      const line = this.lines.get(gsi)!;
      if (line.level !== level) {
        throw new Error(`GSI ${gsi} is ${line.level ? 'up' : 'down'} but its devices ${level ? 'assert' : 'do not assert'} it`);
      }
    }
    // Decoded BARs are on their bus and route to the device; the legacy ports are untouched.
    for (const nic of p.nics) {
      for (const bar of [0, 1]) {
        const at = nic.barMappedAt(bar);
        if (at === undefined) continue;
        const bus = bar === 0 ? p.pio : p.mmio;
        const range = bus.find(at);
        const dev = bar === 0 ? nic.ioBar : nic.mmioBar;
        if (range?.device !== dev || range.base !== at) throw new Error(`BAR${bar} says decoded at 0x${at.toString(16)}, the bus has ${range?.name ?? 'nothing'} there`);
      }
    }
    if (this.rng.chance(0.01)) {
      const now = this.legacyMap();
      if (now !== this.legacy) throw new Error(`legacy ports changed:\n${this.legacy}\n${now}`);
    }
  }

  stats(): Record<string, number> {
    const p = this.platform;
    return {
      nics: p.nics.length, mapFailures: p.nics.reduce((n, d) => n + d.mapFailures, 0), pioMisses: p.pio.missCount, mmioMisses: p.mmio.missCount,
      ...Object.fromEntries(Object.entries(this.ends).map(([k, v]) => [`end.${k}`, v])),
    };
  }

  close(): void {
    this.platform.close();
    for (const b of this.backends) b.close();
  }
}

export const platformTarget: FuzzTarget = { name: 'platform-pci', file: 'platform-pci', create: (rng) => new PlatformFuzz(rng) };
