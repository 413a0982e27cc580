import { test } from 'node:test';
import assert from 'node:assert/strict';
import { PioBus } from '../../lib/bus/bus.js';
import { NodeKvmError } from '../../lib/errors.js';
import { PORT_DEBUG_EXIT } from '../../lib/platform/layout.js';
import { DebugExit, DEBUG_EXIT_IO_SIZE } from '../../lib/devices/debug-exit.js';

function setup() {
  const codes: number[] = [];
  const dev = new DebugExit({ onExit: (c) => codes.push(c) });
  const bus = new PioBus();
  bus.register(PORT_DEBUG_EXIT, DEBUG_EXIT_IO_SIZE, dev, 'debug-exit');
  return { codes, bus, dev };
}

test('a write of v exits with (v << 1) | 1', () => {
  const { codes, bus } = setup();
  bus.write(PORT_DEBUG_EXIT, 1, 0);
  bus.write(PORT_DEBUG_EXIT, 1, 0x10);
  bus.write(PORT_DEBUG_EXIT, 1, 0x1ff); // an outb only carries 8 bits
  assert.deepEqual(codes, [1, 0x21, 0x1ff]);
});

test('word and dword writes carry their full width', () => {
  const { codes, bus } = setup();
  bus.write(PORT_DEBUG_EXIT, 2, 0x1234);
  bus.write(PORT_DEBUG_EXIT, 4, 0xffff_ffff);
  assert.deepEqual(codes, [0x2469, 0x1_ffff_ffff]);
});

test('reads return all-ones', () => {
  const { bus, codes } = setup();
  assert.equal(bus.read(PORT_DEBUG_EXIT, 1), 0xff);
  assert.equal(bus.read(PORT_DEBUG_EXIT, 2), 0xffff);
  assert.equal(bus.read(PORT_DEBUG_EXIT, 4), 0xffff_ffff);
  assert.deepEqual(codes, []);
  assert.equal(bus.missCount, 0);
});

test('bad options are caller errors', () => {
  assert.throws(() => new DebugExit({} as never), (e: unknown) => e instanceof NodeKvmError && e.code === 'ERR_INVALID_ARG');
});
