// The 9P2000.L codec: every message encodes and decodes to itself; malformed bytes (sizes that
// disagree, strings and arrays running past the end, bytes left over, unknown types) decode
// to an error naming the errno to answer with, never an exception.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { decode, encode, encodeInto, encodedSize, isDecodeError, readHeader, str } from '../../lib/devices/virtio/9p/codec.js';
import { MESSAGES, MESSAGE_NAMES, type FieldSpec, type Message, type MessageName } from '../../lib/devices/virtio/9p/protocol.js';
import { LINUX_ERRNO } from '../../lib/devices/virtio/9p/errno.js';

/** A sample value of each field type, different per field index so fields cannot be swapped unnoticed. */
function sample(type: FieldSpec[1], i: number): unknown {
  switch (type) {
    case 'u8': return (0x40 + i) & 0xff;
    case 'u16': return 0x1200 + i;
    case 'u32': return 0xdead0000 + i;
    case 'u64': return 0xfedcba9876540000n + BigInt(i);
    case 'str': return str(`name-${i}-é`);
    case 'qid': return { type: 0x80, version: 7 + i, path: 0x1_0000_0000_0000n + BigInt(i) };
    case 'strs': return [str('a'), str(''), str(`b${i}`)];
    case 'qids': return [{ type: 0, version: 1, path: 2n }, { type: 2, version: 3, path: BigInt(i) }];
    case 'data': return new Uint8Array([1, 2, 3, i & 0xff]);
  }
}

function build(name: MessageName, tag: number): Message {
  const m: Record<string, unknown> = { op: name, tag };
  const spec = MESSAGES[name];
  for (let i = 1; i < spec.length; i++) {
    const [field, type] = spec[i] as FieldSpec;
    m[field] = sample(type, i);
  }
  return m as Message;
}

test('every message round-trips through encode and decode', () => {
  const names = Object.keys(MESSAGES) as MessageName[];
  assert.ok(names.length >= 56);
  for (const [i, name] of names.entries()) {
    const m = build(name, i + 1);
    const bytes = encode(m);
    assert.equal(bytes.byteLength, encodedSize(m));
    const h = readHeader(bytes)!;
    assert.deepEqual(h, { size: bytes.byteLength, type: MESSAGES[name][0], tag: i + 1 });
    const back = decode(bytes);
    assert.ok(!isDecodeError(back), `${name}: ${(back as { reason?: string }).reason}`);
    assert.deepEqual(back, m, name);
  }
});

test('message numbers are 9P2000.L\'s', () => {
  const expect: Record<string, number> = {
    Rlerror: 7, Tstatfs: 8, Tlopen: 12, Tlcreate: 14, Tsymlink: 16, Tmknod: 18, Trename: 20, Treadlink: 22, Tgetattr: 24,
    Tsetattr: 26, Txattrwalk: 30, Txattrcreate: 32, Treaddir: 40, Tfsync: 50, Tlock: 52, Tgetlock: 54, Tlink: 70, Tmkdir: 72,
    Trenameat: 74, Tunlinkat: 76, Tversion: 100, Tauth: 102, Tattach: 104, Tflush: 108, Twalk: 110, Tread: 116,
    Twrite: 118, Tclunk: 120, Tremove: 122,
  };
  for (const [n, t] of Object.entries(expect)) assert.equal(MESSAGES[n as MessageName][0], t, n);
  for (const [t, n] of MESSAGE_NAMES) assert.equal(MESSAGES[n][0], t);
});

test('Rgetattr is 160 bytes, Twrite header 23, Rread header 11, Rlerror 11', () => {
  assert.equal(encode(build('Rgetattr', 1)).byteLength, 160);
  assert.equal(encode({ op: 'Twrite', tag: 1, fid: 1, offset: 0n, data: new Uint8Array(0) }).byteLength, 23);
  assert.equal(encode({ op: 'Rread', tag: 1, data: new Uint8Array(0) }).byteLength, 11);
  assert.equal(encode({ op: 'Rlerror', tag: 1, ecode: 2 }).byteLength, 11);
});

test('a size field larger than the bytes present is EINVAL with the tag', () => {
  const b = encode({ op: 'Tclunk', tag: 9, fid: 1 });
  new DataView(b.buffer).setUint32(0, b.byteLength + 1, true);
  const d = decode(b);
  assert.ok(isDecodeError(d));
  assert.equal(d.errno, LINUX_ERRNO.EINVAL);
  assert.equal(d.tag, 9);
});

test('a size field below the header, and fewer than 7 bytes, are EINVAL', () => {
  const b = encode({ op: 'Tclunk', tag: 9, fid: 1 });
  new DataView(b.buffer).setUint32(0, 3, true);
  assert.equal((decode(b) as { errno: number }).errno, LINUX_ERRNO.EINVAL);
  const short = decode(new Uint8Array([1, 2, 3]));
  assert.ok(isDecodeError(short));
  assert.equal(short.tag, undefined);
});

test('a size field smaller than the fields is EINVAL (fields run past the message)', () => {
  const b = encode({ op: 'Tgetattr', tag: 3, fid: 1, requestMask: 0x7ffn });
  new DataView(b.buffer).setUint32(0, b.byteLength - 4, true);
  const d = decode(b);
  assert.ok(isDecodeError(d));
  assert.match(d.reason, /past/);
});

test('bytes left over after the fields are EINVAL', () => {
  const b = encode({ op: 'Tclunk', tag: 9, fid: 1 });
  const longer = new Uint8Array(b.byteLength + 2);
  longer.set(b);
  new DataView(longer.buffer).setUint32(0, longer.byteLength, true);
  const d = decode(longer);
  assert.ok(isDecodeError(d));
  assert.match(d.reason, /left over/);
});

test('a string whose length runs past the message is EINVAL', () => {
  const b = encode({ op: 'Twalk', tag: 4, fid: 1, newfid: 2, wnames: [str('abc')] });
  // wnames: nwname[2] at 15, then len[2] at 17
  new DataView(b.buffer).setUint16(17, 0xffff, true);
  const d = decode(b);
  assert.ok(isDecodeError(d));
  assert.equal(d.errno, LINUX_ERRNO.EINVAL);
  assert.equal(d.tag, 4);
});

test('an array count running past the message is EINVAL', () => {
  const b = encode({ op: 'Twalk', tag: 4, fid: 1, newfid: 2, wnames: [] });
  new DataView(b.buffer).setUint16(15, 60000, true);
  assert.ok(isDecodeError(decode(b)));
  const r = encode({ op: 'Rwalk', tag: 4, wqids: [] });
  new DataView(r.buffer).setUint16(7, 2, true);
  assert.ok(isDecodeError(decode(r)));
});

test('a data count running past the message is EINVAL', () => {
  const b = encode({ op: 'Twrite', tag: 4, fid: 1, offset: 0n, data: new Uint8Array(8) });
  new DataView(b.buffer).setUint32(19, 9, true);
  assert.ok(isDecodeError(decode(b)));
});

test('unknown types (and types the caller does not serve) are EOPNOTSUPP', () => {
  for (const t of [0, 1, 5, 99, 112, 114, 124, 126, 200, 255]) {
    const b = new Uint8Array(11);
    const v = new DataView(b.buffer);
    v.setUint32(0, 11, true);
    v.setUint8(4, t);
    v.setUint16(5, 77, true);
    const d = decode(b);
    assert.ok(isDecodeError(d), `type ${t}`);
    assert.equal(d.errno, LINUX_ERRNO.EOPNOTSUPP);
    assert.equal(d.tag, 77);
  }
  const r = decode(encode({ op: 'Rclunk', tag: 1 }), (n) => n.startsWith('T'));
  assert.ok(isDecodeError(r));
  assert.equal(r.errno, LINUX_ERRNO.EOPNOTSUPP);
});

test('decoded strings are copies: changing the request afterwards changes nothing', () => {
  const b = encode({ op: 'Tmkdir', tag: 1, dfid: 1, name: str('safe'), mode: 0o755, gid: 0 });
  const d = decode(b) as Extract<Message, { op: 'Tmkdir' }>;
  b.fill(0x2f);
  assert.equal(Buffer.from(d.name).toString(), 'safe');
});

test('random bytes never throw', () => {
  let seed = 12345;
  const rnd = (): number => { seed = (seed * 1103515245 + 12345) & 0x7fffffff; return seed; };
  for (let i = 0; i < 5000; i++) {
    const len = rnd() % 64;
    const b = new Uint8Array(len);
    for (let k = 0; k < len; k++) b[k] = rnd() & 0xff;
    if (len >= 4 && rnd() % 2) new DataView(b.buffer).setUint32(0, len, true);
    if (len >= 5) b[4] = [100, 104, 110, 116, 118, 24, 26, 14, 72, 52][rnd() % 10]!;
    decode(b);
  }
});

test('encodeInto refuses a buffer that is too small', () => {
  const m: Message = { op: 'Rversion', tag: 0xffff, msize: 8192, version: str('9P2000.L') };
  assert.equal(encodeInto(m, new Uint8Array(5)), -1);
  assert.equal(encodeInto(m, new Uint8Array(100)), encodedSize(m));
});
