// Interrupt lines the platform shares between devices: COM1/COM3 on IRQ 4 and COM2/COM4 on
// IRQ 3 (found by the platform fuzzer: a quiet COM3 dropped COM1's interrupt).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Platform } from '../../lib/machine/platform.js';
import { RecordingIrqLine } from '../../lib/bus/irq.js';
import { fakeGuestMemory } from '../../lib/kvm/memory.js';
import { IER_ERBFI, IER_ETBEI, UART_IER, UART_IIR } from '../../lib/devices/uart16550.js';

test('COM ports sharing an IRQ drive it as the OR of their interrupts', () => {
  // One line object per IRQ, as Machine's KVM lines are.
  const lines = new Map<number, RecordingIrqLine>();
  const p = new Platform({ memory: fakeGuestMemory([{ guestPhysAddr: 0, size: 0x10000 }]), memoryBelow4g: 0x10000, memoryAbove4g: 0, cpus: 1, comPorts: 4, net: [] }, {
    irq: (n) => {
      let l = lines.get(n);
      if (l === undefined) lines.set(n, (l = new RecordingIrqLine()));
      return l;
    },
    end: () => {}, consoleByte: () => {}, consoleRxSpace: () => {},
  });
  const irq4 = lines.get(4)!;
  p.pio.write(0x3f8 + UART_IER, 1, IER_ETBEI); // COM1: THR empty interrupt pending
  assert.equal(irq4.level, true);
  p.pio.write(0x3e8 + UART_IER, 1, 0); // COM3 has nothing pending and says so
  assert.equal(irq4.level, true, 'COM1 still has its THRE interrupt pending');
  p.pio.write(0x3e8 + UART_IER, 1, IER_ETBEI); // COM3 pending too
  p.pio.read(0x3f8 + UART_IIR, 1); // COM1's IIR read acknowledges its THRE
  assert.equal(irq4.level, true, 'COM3 still pending');
  p.pio.read(0x3e8 + UART_IIR, 1);
  assert.equal(irq4.level, false);
  // IRQ 3: COM2 and COM4, same rule.
  assert.equal(p.consoleInput(new Uint8Array([0x41])), 1); // host input goes to COM1 only
  p.pio.write(0x2f8 + UART_IER, 1, IER_ETBEI);
  p.pio.write(0x2e8 + UART_IER, 1, IER_ERBFI);
  assert.equal(lines.get(3)!.level, true);
  p.close();
});
