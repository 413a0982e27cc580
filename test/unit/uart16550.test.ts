import { test } from 'node:test';
import assert from 'node:assert/strict';
import { PioBus } from '../../lib/bus/bus.js';
import { RecordingIrqLine } from '../../lib/bus/irq.js';
import { NodeKvmError } from '../../lib/errors.js';
import { PORT_COM } from '../../lib/platform/layout.js';
import {
  Uart16550, UART_IO_SIZE,
  UART_RBR, UART_THR, UART_IER, UART_IIR, UART_FCR, UART_LCR, UART_MCR, UART_LSR, UART_MSR, UART_SCR,
} from '../../lib/devices/uart16550.js';

const COM1 = PORT_COM[0];

function setup(opts: { inputQueueSize?: number } = {}) {
  const irq = new RecordingIrqLine();
  const out: number[] = [];
  let spaceCalls = 0;
  const uart = new Uart16550({ irq, onTransmit: (b) => out.push(b), onRxSpace: () => spaceCalls++, ...opts });
  const bus = new PioBus();
  bus.register(COM1, UART_IO_SIZE, uart, 'com1');
  const inb = (reg: number) => bus.read(COM1 + reg, 1);
  const outb = (reg: number, v: number) => bus.write(COM1 + reg, 1, v);
  return { irq, out, uart, bus, inb, outb, spaceCalls: () => spaceCalls };
}

const bytes = (s: string) => new TextEncoder().encode(s);

test('reset state: IIR no interrupt, LSR THRE|TEMT, MSR DCD|DSR|CTS, line low', () => {
  const { inb, irq } = setup();
  assert.equal(inb(UART_IER), 0);
  assert.equal(inb(UART_IIR), 0x01);
  assert.equal(inb(UART_LCR), 0);
  assert.equal(inb(UART_MCR), 0);
  assert.equal(inb(UART_LSR), 0x60);
  assert.equal(inb(UART_MSR), 0xb0);
  assert.equal(irq.level, false);
});

test('THR write goes to onTransmit', () => {
  const { outb, out, inb } = setup();
  for (const b of bytes('hi\n')) outb(UART_THR, b);
  assert.deepEqual(out, [0x68, 0x69, 0x0a]);
  assert.equal(inb(UART_LSR) & 0x60, 0x60);
});

test('scratch register holds a byte', () => {
  const { outb, inb } = setup();
  outb(UART_SCR, 0xa5);
  assert.equal(inb(UART_SCR), 0xa5);
  outb(UART_SCR, 0x5a);
  assert.equal(inb(UART_SCR), 0x5a);
});

test('DLAB switches offsets 0/1 to DLL/DLM and does not transmit', () => {
  const { outb, inb, out, uart } = setup();
  outb(UART_LCR, 0x83);
  outb(0, 0x01);
  outb(1, 0x00);
  assert.equal(inb(0), 0x01);
  assert.equal(inb(1), 0x00);
  assert.equal(uart.divisor, 1);
  outb(UART_LCR, 0x03);
  assert.equal(inb(UART_LCR), 0x03);
  assert.equal(inb(UART_IER), 0);
  assert.deepEqual(out, []);
});

test('IER keeps only bits 0-3 (16550A, not XScale UUE)', () => {
  const { outb, inb } = setup();
  outb(UART_IER, 0xff);
  assert.equal(inb(UART_IER), 0x0f);
  outb(UART_IER, 0x40);
  assert.equal(inb(UART_IER), 0x00);
});

test('Linux autoconfig: IER test, LOOP test, FIFO test detect a 16550A', () => {
  const { outb, inb } = setup();
  // IER probe
  outb(UART_IER, 0);
  assert.equal(inb(UART_IER) & 0x0f, 0);
  outb(UART_IER, 0x0f);
  assert.equal(inb(UART_IER) & 0x0f, 0x0f);
  outb(UART_IER, 0);
  // Loopback probe: MCR = LOOP | OUT2 | RTS → MSR top nibble DCD|CTS = 0x90.
  const saveMcr = inb(UART_MCR);
  outb(UART_MCR, 0x10 | 0x0a);
  assert.equal(inb(UART_MSR) & 0xf0, 0x90);
  outb(UART_MCR, saveMcr);
  // FIFO probe
  outb(UART_LCR, 0);
  outb(UART_FCR, 0x01);
  assert.equal(inb(UART_IIR) >> 6, 3);
  // autoconfig_16550a: EFR probes with DLAB set must not read 0 at offset 2.
  outb(UART_LCR, 0x80);
  assert.notEqual(inb(2), 0);
  outb(UART_LCR, 0xbf);
  assert.notEqual(inb(2), 0);
  // 16750 probe: 64-byte FIFO bit must not show in IIR bit 5.
  outb(UART_LCR, 0);
  outb(UART_FCR, 0x21);
  const s1 = inb(UART_IIR) >> 5;
  outb(UART_FCR, 0x01);
  outb(UART_LCR, 0x80);
  outb(UART_FCR, 0x21);
  const s2 = inb(UART_IIR) >> 5;
  assert.ok(!(s1 === 6 && s2 === 7));
  outb(UART_LCR, 0);
  // FCR=0xE7 (enable, clear both, trigger 14) keeps the 0xC0 bits.
  outb(UART_FCR, 0xe7);
  assert.equal(inb(UART_IIR), 0xc1);
  outb(UART_FCR, 0);
  assert.equal(inb(UART_IIR), 0x01);
});

test('loopback: TX goes to RX, not to the host; MSR mirrors MCR; deltas latch', () => {
  const { outb, inb, out, uart } = setup();
  outb(UART_MCR, 0x10);
  assert.equal(uart.loopback, true);
  // Entering loop with all outputs low drops DCD/DSR/CTS → delta bits.
  assert.equal(inb(UART_MSR), 0x0b);
  assert.equal(inb(UART_MSR), 0x00); // deltas cleared by the read
  outb(UART_MCR, 0x1f);
  assert.equal(inb(UART_MSR), 0xf0 | 0x0b);
  outb(UART_MCR, 0x1b); // OUT1 (RI) falls → TERI
  assert.equal(inb(UART_MSR) & 0x0f, 0x04);
  outb(UART_THR, 0x41);
  assert.deepEqual(out, []);
  assert.equal(inb(UART_LSR) & 1, 1);
  assert.equal(inb(UART_RBR), 0x41);
  assert.equal(inb(UART_LSR) & 1, 0);
});

test('loopback overrun sets OE, LSR read clears it; line status interrupt', () => {
  const { outb, inb, irq } = setup();
  outb(UART_MCR, 0x10);
  outb(UART_IER, 0x04); // ELSI only
  outb(UART_THR, 1); // FIFO off: one-byte holding register
  assert.equal(irq.level, false);
  outb(UART_THR, 2); // overrun
  assert.equal(irq.level, true);
  assert.equal(inb(UART_IIR), 0x06);
  assert.equal(inb(UART_LSR), 0x63);
  assert.equal(inb(UART_LSR), 0x61);
  assert.equal(irq.level, false);
  assert.equal(inb(UART_RBR), 1);
});

test('RX without FIFO: one byte at a time, receive() accepts only what fits', () => {
  const { uart, inb, outb, irq } = setup();
  outb(UART_IER, 0x01);
  assert.equal(uart.receive(bytes('ab')), 1);
  assert.equal(irq.level, true);
  assert.equal(inb(UART_IIR), 0x04);
  assert.equal(inb(UART_RBR), 0x61);
  assert.equal(irq.level, false);
  assert.equal(inb(UART_IIR), 0x01);
});

test('RX FIFO: 16 bytes, trigger level gives RDI, below it character timeout', () => {
  const { uart, inb, outb, irq } = setup();
  outb(UART_FCR, 0x81); // enable, trigger 8
  outb(UART_IER, 0x01);
  assert.equal(uart.receive(bytes('0123456789abcdefXYZ')), 16);
  assert.equal(inb(UART_IIR), 0xc4);
  for (let i = 0; i < 8; i++) inb(UART_RBR);
  assert.equal(inb(UART_IIR), 0xc4); // 8 left = trigger level
  inb(UART_RBR);
  assert.equal(inb(UART_IIR), 0xcc); // below trigger: timeout
  let s = '';
  while (inb(UART_LSR) & 1) s += String.fromCharCode(inb(UART_RBR));
  assert.equal(s, '9abcdef');
  assert.equal(inb(UART_IIR), 0xc1);
  assert.equal(irq.level, false);
});

test('FCR clear RX empties the FIFO; trigger levels 1/4/8/14', () => {
  const { uart, inb, outb } = setup();
  outb(UART_IER, 0x01);
  const levels: Array<[number, number]> = [[0x01, 1], [0x41, 4], [0x81, 8], [0xc1, 14]];
  for (const [fcr, level] of levels) {
    outb(UART_FCR, fcr | 0x02);
    assert.equal(inb(UART_LSR) & 1, 0);
    uart.receive(new Uint8Array(level - 1));
    if (level > 1) assert.equal(inb(UART_IIR), 0xcc);
    uart.receive(new Uint8Array(1));
    assert.equal(inb(UART_IIR), 0xc4, `trigger ${level}`);
  }
  outb(UART_FCR, 0x07);
  assert.equal(inb(UART_LSR) & 1, 0);
});

test('enqueueInput: bounded host queue drains into the FIFO as the guest reads, onRxSpace fires', () => {
  const { uart, inb, outb, spaceCalls } = setup({ inputQueueSize: 20 });
  outb(UART_FCR, 0x01);
  assert.equal(uart.enqueueInput(new Uint8Array(40).map((_, i) => i)), 20);
  assert.equal(uart.pendingInput, 20);
  assert.equal(uart.receive(bytes('x')), 0); // queued bytes go first
  const got: number[] = [];
  while (inb(UART_LSR) & 1) got.push(inb(UART_RBR));
  assert.equal(got.length, 20);
  assert.deepEqual(got, [...Array(20).keys()]);
  assert.equal(spaceCalls(), 1);
  assert.equal(uart.pendingInput, 0);
});

test('receive backpressure: refused bytes trigger onRxSpace once the guest reads', () => {
  const { uart, inb, outb, spaceCalls } = setup();
  outb(UART_FCR, 0x01);
  assert.equal(uart.receive(new Uint8Array(20)), 16);
  assert.equal(spaceCalls(), 0);
  inb(UART_RBR);
  assert.equal(spaceCalls(), 1);
  assert.equal(uart.receive(new Uint8Array(4)), 1);
});

test('THRE interrupt: raised on ETBEI enable, cleared by IIR read, re-armed by THR write', () => {
  const { outb, inb, irq } = setup();
  outb(UART_IER, 0x02);
  assert.equal(irq.level, true);
  assert.equal(inb(UART_LSR), 0x60); // LSR read does not acknowledge THRE
  assert.equal(inb(UART_IIR), 0x02);
  assert.equal(irq.level, false);
  assert.equal(inb(UART_IIR), 0x01);
  outb(UART_THR, 0x41);
  assert.equal(irq.level, true);
  outb(UART_IER, 0);
  assert.equal(irq.level, false);
});

test('Linux 8250 startup THRE tests (UART_BUG_TXEN, UART_BUG_THRE) pass', () => {
  const { outb, inb } = setup();
  // TXEN test: enable THRI, read LSR then IIR: a real 16550 shows an interrupt.
  outb(UART_IER, 0x02);
  const lsr = inb(UART_LSR);
  const iir = inb(UART_IIR);
  outb(UART_IER, 0);
  assert.ok(!(lsr & 0x40 && iir & 1), 'would set UART_BUG_TXEN');
  // THRE re-assert test.
  outb(UART_IER, 0x02);
  const iir1 = inb(UART_IIR);
  outb(UART_IER, 0);
  outb(UART_IER, 0x02);
  const iir2 = inb(UART_IIR);
  outb(UART_IER, 0);
  assert.ok(!(!(iir1 & 1) && iir2 & 1), 'would set UART_BUG_THRE');
});

test('IIR priority: line status > RX data > THRE > modem status', () => {
  const { outb, inb, uart } = setup();
  outb(UART_FCR, 0x01);
  outb(UART_MCR, 0x10); // loop: modem deltas pending
  outb(UART_IER, 0x0f);
  for (let i = 0; i < 17; i++) outb(UART_THR, i); // overrun in loopback
  assert.equal(inb(UART_IIR), 0xc6);
  inb(UART_LSR);
  assert.equal(inb(UART_IIR), 0xc4);
  while (inb(UART_LSR) & 1) inb(UART_RBR);
  assert.equal(inb(UART_IIR), 0xc2);
  assert.equal(inb(UART_IIR), 0xc0); // modem status
  inb(UART_MSR);
  assert.equal(inb(UART_IIR), 0xc1);
  uart.reset();
  assert.equal(inb(UART_IIR), 0x01);
});

test('a misbehaving guest never makes read/write throw', () => {
  const { bus } = setup();
  for (let off = 0; off < 8; off++) {
    for (const size of [1, 2, 4]) {
      bus.write(COM1 + off, size, 0xffffffff);
      bus.read(COM1 + off, size);
    }
  }
});

test('bad options are caller errors', () => {
  assert.throws(() => new Uart16550({} as never), (e: unknown) => e instanceof NodeKvmError && e.code === 'ERR_INVALID_ARG');
  assert.throws(() => new Uart16550({ irq: new RecordingIrqLine(), onTransmit: () => {}, inputQueueSize: -1 }), NodeKvmError);
});
