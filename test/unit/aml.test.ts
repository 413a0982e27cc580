// Byte-exact checks of the AML encoder against hand-decoded encodings (ACPI 6.5 §20.2).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  aml, amlBuffer, amlDevice, amlInteger, amlMethod, amlName, amlPackage, amlReturn, amlScope, amlString,
  dwordMemory, eisaId, ioPort, irqNoFlags, nameString, pkgLength, resourceTemplate, wordBusNumber, wordIo,
} from '../../lib/boot/acpi/aml.js';
import { NodeKvmError } from '../../lib/errors.js';

const bytes = (a: Uint8Array): number[] => Array.from(a);

test('PkgLength one-byte form holds totals up to 63', () => {
  assert.deepEqual(bytes(pkgLength(0)), [0x01]);
  assert.deepEqual(bytes(pkgLength(10)), [0x0b]);
  assert.deepEqual(bytes(pkgLength(62)), [0x3f]);
});

test('PkgLength two-byte form: count in bits 7-6, low nibble, then the next 8 bits', () => {
  // body 63 -> total 65 = 0x41: lead 0x40 | 0x1, next byte 0x04.
  assert.deepEqual(bytes(pkgLength(63)), [0x41, 0x04]);
  // body 1000 -> total 1002 = 0x3EA.
  assert.deepEqual(bytes(pkgLength(1000)), [0x4a, 0x3e]);
  // Largest two-byte total 0xFFF.
  assert.deepEqual(bytes(pkgLength(0xfff - 2)), [0x4f, 0xff]);
});

test('PkgLength three- and four-byte forms', () => {
  // body 0xFFE -> total 0x1001 (two-byte form cannot hold it): lead 0x81, then 0x00, 0x01.
  assert.deepEqual(bytes(pkgLength(0xffe)), [0x81, 0x00, 0x01]);
  // body 100000 -> total 100003 = 0x186A3.
  assert.deepEqual(bytes(pkgLength(100000)), [0x83, 0x6a, 0x18]);
  // body 0xFFFFC -> total 0xFFFFF, the largest three-byte form.
  assert.deepEqual(bytes(pkgLength(0xffffc)), [0x8f, 0xff, 0xff]);
  // body 0xFFFFD -> three bytes would total 0x100000 (too big), so four: 0x100001.
  assert.deepEqual(bytes(pkgLength(0xffffd)), [0xc1, 0x00, 0x00, 0x01]);
  assert.throws(() => pkgLength(2 ** 28), (e: NodeKvmError) => e.code === 'ERR_AML_INVALID');
  assert.throws(() => pkgLength(-1), (e: NodeKvmError) => e.code === 'ERR_AML_INVALID');
});

test('PkgLength inside a Buffer counts itself and switches form at the boundary', () => {
  // Buffer body = BytePrefix size (2 bytes) + data; 60 data bytes -> body 62 -> one byte.
  const small = amlBuffer(new Uint8Array(60));
  assert.deepEqual(bytes(small.subarray(0, 4)), [0x11, 0x3f, 0x0a, 60]);
  assert.equal(small.length, 2 + 62);
  const big = amlBuffer(new Uint8Array(61));
  assert.deepEqual(bytes(big.subarray(0, 5)), [0x11, 0x41, 0x04, 0x0a, 61]);
  assert.equal(big.length, 1 + 0x41);
  // 5000 data bytes: WordPrefix size -> body 5003 -> total 5006 = 0x138E, three-byte form.
  const huge = amlBuffer(new Uint8Array(5000));
  assert.deepEqual(bytes(huge.subarray(0, 7)), [0x11, 0x8e, 0x38, 0x01, 0x0b, 0x88, 0x13]);
  assert.equal(huge.length, 1 + 5006);
});

test('integers take the shortest encoding', () => {
  assert.deepEqual(bytes(amlInteger(0)), [0x00]);
  assert.deepEqual(bytes(amlInteger(1)), [0x01]);
  assert.deepEqual(bytes(amlInteger(5)), [0x0a, 0x05]);
  assert.deepEqual(bytes(amlInteger(0xff)), [0x0a, 0xff]);
  assert.deepEqual(bytes(amlInteger(0x100)), [0x0b, 0x00, 0x01]);
  assert.deepEqual(bytes(amlInteger(0x1ffff)), [0x0c, 0xff, 0xff, 0x01, 0x00]);
  assert.deepEqual(bytes(amlInteger(0x1_0000_0000n)), [0x0e, 0, 0, 0, 0, 1, 0, 0, 0]);
  assert.throws(() => amlInteger(-1), (e: NodeKvmError) => e.code === 'ERR_AML_INVALID');
});

test('name strings: segments, padding, root and parent prefixes, dual and multi names', () => {
  assert.deepEqual(bytes(nameString('_S5_')), [0x5f, 0x53, 0x35, 0x5f]);
  assert.deepEqual(bytes(nameString('_SB')), [0x5f, 0x53, 0x42, 0x5f]);
  assert.deepEqual(bytes(nameString('\\_SB')), [0x5c, 0x5f, 0x53, 0x42, 0x5f]);
  assert.deepEqual(bytes(nameString('\\_SB.PCI0')), [0x5c, 0x2e, 0x5f, 0x53, 0x42, 0x5f, 0x50, 0x43, 0x49, 0x30]);
  assert.deepEqual(bytes(nameString('^A.B.C')), [0x5e, 0x2f, 3, 0x41, 0x5f, 0x5f, 0x5f, 0x42, 0x5f, 0x5f, 0x5f, 0x43, 0x5f, 0x5f, 0x5f]);
  assert.deepEqual(bytes(nameString('\\')), [0x5c, 0x00]);
  assert.throws(() => nameString('toolong'), (e: NodeKvmError) => e.code === 'ERR_AML_INVALID');
  assert.throws(() => nameString('1ABC'), (e: NodeKvmError) => e.code === 'ERR_AML_INVALID');
});

test('EISAID packs PNP0A03 as iasl does', () => {
  assert.equal(eisaId('PNP0A03'), 0x030ad041);
  assert.equal(eisaId('PNP0501'), 0x0105d041);
  assert.throws(() => eisaId('pnp0a03'), (e: NodeKvmError) => e.code === 'ERR_AML_INVALID');
});

test('Name(_S5_, Package {5, 5, 0, 0}) encodes exactly', () => {
  const s5 = amlName('\\_S5_', amlPackage([amlInteger(5), amlInteger(5), amlInteger(0), amlInteger(0)]));
  assert.deepEqual(bytes(s5), [0x08, 0x5c, 0x5f, 0x53, 0x35, 0x5f, 0x12, 0x08, 0x04, 0x0a, 0x05, 0x0a, 0x05, 0x00, 0x00]);
});

test('Scope, Device, Method, Return and String', () => {
  const dev = amlScope('\\_SB', amlDevice('COM1', amlName('_UID', amlInteger(1))));
  assert.deepEqual(bytes(dev), [
    0x10, 0x13, 0x5c, 0x5f, 0x53, 0x42, 0x5f, // Scope PkgLength(19) \_SB_
    0x5b, 0x82, 0x0b, 0x43, 0x4f, 0x4d, 0x31, // Device PkgLength(11) COM1
    0x08, 0x5f, 0x55, 0x49, 0x44, 0x01, // Name(_UID, One)
  ]);
  const m = amlMethod('_STA', 0, false, amlReturn(amlInteger(0x0f)));
  assert.deepEqual(bytes(m), [0x14, 0x09, 0x5f, 0x53, 0x54, 0x41, 0x00, 0xa4, 0x0a, 0x0f]);
  assert.deepEqual(bytes(amlMethod('FOO', 2, true).subarray(6, 7)), [0x0a]);
  assert.deepEqual(bytes(amlString('AB')), [0x0d, 0x41, 0x42, 0x00]);
  assert.throws(() => amlMethod('X', 8, false), (e: NodeKvmError) => e.code === 'ERR_AML_INVALID');
  assert.throws(() => amlPackage(new Array<Uint8Array>(256).fill(amlInteger(0))), (e: NodeKvmError) => e.code === 'ERR_AML_INVALID');
});

test('resource descriptors are byte-exact', () => {
  assert.deepEqual(bytes(wordBusNumber(0, 0xff)), [
    0x88, 0x0d, 0x00, 0x02, 0x0c, 0x00, 0x00, 0x00, 0x00, 0x00, 0xff, 0x00, 0x00, 0x00, 0x00, 0x01]);
  assert.deepEqual(bytes(ioPort(0xcf8, 0xcf8, 1, 8)), [0x47, 0x01, 0xf8, 0x0c, 0xf8, 0x0c, 0x01, 0x08]);
  assert.deepEqual(bytes(wordIo(0xd00, 0xffff)), [
    0x88, 0x0d, 0x00, 0x01, 0x0c, 0x03, 0x00, 0x00, 0x00, 0x0d, 0xff, 0xff, 0x00, 0x00, 0x00, 0xf3]);
  assert.deepEqual(bytes(dwordMemory(0xa0000, 0xbffff, true)), [
    0x87, 0x17, 0x00, 0x00, 0x0c, 0x03,
    0, 0, 0, 0, 0x00, 0x00, 0x0a, 0x00, 0xff, 0xff, 0x0b, 0x00, 0, 0, 0, 0, 0x00, 0x00, 0x02, 0x00]);
  assert.deepEqual(bytes(irqNoFlags(4)), [0x22, 0x10, 0x00]);
  // ResourceTemplate = Buffer(size) { descriptors, EndTag 0x79 0x00 }.
  assert.deepEqual(bytes(resourceTemplate(irqNoFlags(1))), [0x11, 0x08, 0x0a, 0x05, 0x22, 0x02, 0x00, 0x79, 0x00]);
  assert.throws(() => wordIo(0x10, 0x0f), (e: NodeKvmError) => e.code === 'ERR_AML_INVALID');
});

test('aml() concatenates arrays and typed arrays', () => {
  assert.deepEqual(bytes(aml([1, 2], Uint8Array.of(3), [])), [1, 2, 3]);
});
