// PCI bus 0 as a guest enumerates it through 0xCF8/0xCFC (test/guests/plat-pci.S, 32-bit
// flat): the host bridge alone, then with an RTL8139 whose BARs the guest sizes the way
// firmware does (write all-ones, read the mask, restore) before reading the NIC's MAC through
// the restored I/O BAR.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { requireKvm } from '../helpers/kvm.js';
import { buildGuestFile } from '../guests/build.js';
import { Machine, type NetOptions } from '../../lib/machine/index.js';
import { NullBackend } from '../../lib/net/backend.js';
import { Kvm, constants } from '../../lib/index.js';
import { PCI_IO_START, PCI_MMIO_START } from '../../lib/platform/layout.js';

interface Scan {
  devices: Array<{ slot: number; vendor: number; device: number; classRev: number }>;
  values: Map<string, number>;
  mac: string | undefined;
  exitValue: number;
}

async function scan(net: NetOptions[]): Promise<Scan> {
  const kernel = new Uint8Array(readFileSync(buildGuestFile('plat-pci.S', { linkAddress: 0x10000, format: 'flat' })));
  await using m = await Machine.create({ kernel, memory: '32M', net, flat: { mode: 'protected' } });
  m.start();
  await m.console.waitFor('pci done\n', { timeout: 30_000 });
  const result = await m.wait();
  assert.equal(result.reason, 'debug-exit', m.console.output);
  assert.equal(m.counters.pioMisses, 0, 'every config and BAR access was decoded');
  const out = m.console.output;
  const devices = [...out.matchAll(/^pci slot=([0-9a-f]{2}) id=([0-9a-f]{8}) class=([0-9a-f]{8})$/gm)].map((x) => {
    const id = parseInt(x[2]!, 16);
    return { slot: parseInt(x[1]!, 16), vendor: id & 0xffff, device: id >>> 16, classRev: parseInt(x[3]!, 16) };
  });
  const values = new Map([...out.matchAll(/^([a-z0-9]+)=([0-9a-f]{8})$/gm)].map((x) => [x[1]!, parseInt(x[2]!, 16)] as const));
  return { devices, values, mac: /^mac=([0-9a-f:]{17})$/m.exec(out)?.[1], exitValue: (result.code - 1) / 2 };
}

test('guest PCI scan finds only the host bridge 8086:1237 at 00:00.0 without a NIC', async (t) => {
  if (!requireKvm(t)) return;
  const s = await scan([]);
  assert.deepEqual(s.devices.map(({ slot, vendor, device }) => ({ slot, vendor, device })), [{ slot: 0, vendor: 0x8086, device: 0x1237 }]);
  assert.equal(s.devices[0]!.classRev >>> 8, 0x060000, 'host bridge class');
  assert.equal(s.exitValue, 1, 'guest counted one function');
  assert.equal(s.values.has('bar0'), false);
});

test('guest PCI scan finds the RTL8139 and sizes its BARs (I/O 256 bytes, MMIO 256 bytes), then restores them', async (t) => {
  if (!requireKvm(t)) return;
  const backend = new NullBackend();
  const mac = '52:54:00:ab:cd:ef';
  const s = await scan([{ backend, mac }]);
  backend.close();
  assert.equal(s.exitValue, 2, 'guest counted two functions');
  assert.deepEqual(s.devices[0], { slot: 0, vendor: 0x8086, device: 0x1237, classRev: s.devices[0]!.classRev });
  const nic = s.devices[1]!;
  assert.ok(nic.slot >= 1 && nic.slot < 32);
  assert.equal(nic.vendor, 0x10ec);
  assert.equal(nic.device, 0x8139);
  assert.equal(nic.classRev >>> 8, 0x020000, 'Ethernet controller class');

  const v = (k: string): number => {
    const x = s.values.get(k);
    assert.ok(x !== undefined, `guest reported ${k}`);
    return x;
  };
  // BAR0: I/O space, 256 bytes.
  assert.equal(v('bar0') & 1, 1, 'BAR0 is an I/O BAR');
  assert.notEqual(v('bar0') & ~0xff, 0, 'BAR0 was assigned an address before boot');
  assert.equal(v('bar0mask'), 0xffffff01);
  assert.equal(v('bar0size'), 0x100);
  assert.equal(v('bar0restored'), v('bar0'));
  // BAR1: 32-bit memory space, 256 bytes.
  assert.equal(v('bar1') & 1, 0, 'BAR1 is a memory BAR');
  assert.equal((v('bar1mask') & 0xfffffff0) >>> 0, 0xffffff00);
  assert.equal(v('bar1size'), 0x100);
  assert.equal(v('bar1restored'), v('bar1'));
  assert.equal(v('cmd') & 0x3, 0x3, 'I/O and memory decoding enabled');
  // The restored I/O BAR still reaches the NIC's registers.
  assert.equal(s.mac, mac);
});

test('the guest\'s writes to the RTL8139\'s CAPR and IntrMask/IntrStatus are queued by KVM (coalesced MMIO and PIO) and applied in order', async (t) => {
  if (!requireKvm(t)) return;
  const backend = new NullBackend();
  t.after(() => backend.close());
  const le = (v: number, n: number): number[] => Array.from({ length: n }, (_, i) => (v >>> (8 * i)) & 0xff);
  // 32-bit flat code, at the addresses the platform assigns the NIC's BARs (checked below):
  //   mov eax, 0x0ff0; mov [BAR1 + RxBufPtr], ax      (MMIO, CAPR)
  //   mov eax, 0x8001; mov [BAR1 + IntrMask], ax      (MMIO)
  //   mov dx, BAR0 + IntrMask; mov ax, 0x0055; out dx, ax   (PIO)
  //   cli; hlt; jmp back to hlt
  // No exit to userspace follows: only the run loop's kick applies the queued writes.
  const mmio = PCI_MMIO_START + 0x3c;
  const capr = PCI_MMIO_START + 0x38;
  const port = PCI_IO_START + 0x3c;
  const kernel = Uint8Array.from([0xb8, ...le(0x0ff0, 4), 0x66, 0xa3, ...le(capr, 4), 0xb8, ...le(0x8001, 4), 0x66, 0xa3, ...le(mmio, 4),
    0x66, 0xba, ...le(port, 2), 0x66, 0xb8, ...le(0x55, 2), 0x66, 0xef, 0xfa, 0xf4, 0xeb, 0xfd]);
  await using m = await Machine.create({ kernel, memory: '16M', net: [{ backend }], flat: { mode: 'protected' } });
  const nic = m.platform.nics[0]!;
  assert.equal(nic.barAddress(1), PCI_MMIO_START);
  assert.equal(nic.barAddress(0), PCI_IO_START);
  using kvm = Kvm.open();
  const supported = kvm.checkExtension(constants.KVM_CAP_COALESCED_MMIO!) > 0 && kvm.checkExtension(constants.KVM_CAP_COALESCED_PIO!) > 0;
  m.start();
  // Generous: the guest only has to run a few instructions, but a loaded lab may not let it.
  const deadline = Date.now() + 60_000;
  while (nic.mmioBar.read(0x3c, 2) !== 0x55 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
  t.diagnostic(`coalesced MMIO+PIO ${supported ? 'supported' : 'not supported'}: ${m.counters.coalesced} queued writes, ${m.counters.mmio} MMIO and ${m.counters.io} PIO exits`);
  assert.equal(nic.mmioBar.read(0x3c, 2), 0x55, 'the PIO write, applied after the MMIO one');
  assert.equal(nic.mmioBar.read(0x38, 2), 0x0ff0, 'CAPR');
  if (supported) {
    assert.equal(m.counters.coalesced, 3);
    assert.equal(m.counters.mmio + m.counters.io, 0, 'no write exited');
  }
  await m.stop();
});
