// The exec channel's codec without a guest: request encoding round trips, and the decoder fed
// frames split at every byte, malformed frames, and garbage followed by a HELLO.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  decodeExec, encodeExec, encodeFrame, encodeHello, encodeWriteOpen, FrameDecoder, HEADER_SIZE, MAX_GUEST_PAYLOAD, parseError,
  parseExit, parseReadSize, T, type ExecRequest, type Frame,
} from '../../lib/testing/agent-protocol.js';
import type { AgentProtocolError } from '../../lib/testing/agent-protocol.js';

function decoder(): { d: FrameDecoder; frames: Frame[]; errors: AgentProtocolError[] } {
  const frames: Frame[] = [];
  const errors: AgentProtocolError[] = [];
  return { d: new FrameDecoder((f) => frames.push({ ...f, payload: Buffer.from(f.payload) }), (e) => errors.push(e)), frames, errors };
}

const exit = (code: number, sig = false): Buffer => {
  const b = Buffer.alloc(5);
  b[0] = sig ? 1 : 0;
  b.writeUInt32LE(code, 1);
  return b;
};

test('exec requests round trip: shell string, argv, env, cwd, stdin flag, binary-safe text', () => {
  const cases: ExecRequest[] = [
    { command: 'echo "$A"; exit 3', env: { A: "it's\n$x", B: '' }, cwd: '/tmp', stdin: true },
    { command: ['printf', '%s', 'ä\x01\xff'], env: {}, cwd: '', stdin: false },
    { command: 'x'.repeat(1024 * 1024), env: {}, cwd: '', stdin: false },
  ];
  for (const c of cases) assert.deepEqual(decodeExec(encodeExec(c)), c);
  assert.throws(() => encodeExec({ command: [] }), { code: 'ERR_INVALID_ARG' });
  assert.throws(() => encodeExec({ command: 'a\0b' }), { code: 'ERR_INVALID_ARG' });
  assert.throws(() => encodeExec({ command: 'true', env: { 'A=B': 'x' } }), { code: 'ERR_INVALID_ARG' });
  assert.throws(() => encodeExec({ command: 'x'.repeat(17 * 1024 * 1024) }), { code: 'ERR_EXEC_TOO_LARGE' });
  assert.throws(() => encodeWriteOpen('', undefined), { code: 'ERR_INVALID_ARG' });
  assert.throws(() => encodeWriteOpen('/a', 0o10000), { code: 'ERR_INVALID_ARG' });
  assert.deepEqual([...encodeWriteOpen('/a', 0o755)], [1, 0xed, 1, 0, 0, 0x2f, 0x61, 0]);
});

test('frames split at every byte boundary decode to the same frames', () => {
  const stream = Buffer.concat([
    encodeFrame(T.HELLO, 0, encodeHello()),
    encodeFrame(T.STDOUT, 7, Buffer.from([0, 1, 2, 255])),
    encodeFrame(T.STDERR, 7, Buffer.from('err')),
    encodeFrame(T.STDIN_ACK, 7, Buffer.from([4, 0, 0, 0])),
    encodeFrame(T.EXIT, 7, exit(42)),
    encodeFrame(T.OK, 9, Buffer.alloc(8)),
    encodeFrame(T.READ_EOF, 9),
  ]);
  for (let cut = 0; cut <= stream.length; cut++) {
    const { d, frames, errors } = decoder();
    d.push(stream.subarray(0, cut));
    d.push(stream.subarray(cut));
    assert.equal(errors.length, 0);
    assert.deepEqual(frames.map((f) => [f.type, f.id, f.payload.length]), [
      [T.HELLO, 0, 20], [T.STDOUT, 7, 4], [T.STDERR, 7, 3], [T.STDIN_ACK, 7, 4], [T.EXIT, 7, 5], [T.OK, 9, 8], [T.READ_EOF, 9, 0],
    ]);
  }
  // One byte at a time.
  const { d, frames } = decoder();
  for (const b of stream) d.push(Buffer.from([b]));
  assert.equal(frames.length, 7);
  assert.deepEqual([...frames[1]!.payload], [0, 1, 2, 255]);
});

test('malformed frames are reported once each, never thrown, and input resumes at the next HELLO', () => {
  const bad: Array<[string, Buffer]> = [
    ['unknown type', encodeFrame(0x42, 1, Buffer.from('x'))],
    ['host-only type from the guest', encodeFrame(T.EXEC, 1, Buffer.from('x'))],
    ['too long', Buffer.concat([Buffer.from([0, 0, 0, 0x7f]), Buffer.from([T.STDOUT, 1, 0, 0, 0])])],
    ['just over the limit', (() => { const h = Buffer.alloc(HEADER_SIZE); h.writeUInt32LE(MAX_GUEST_PAYLOAD + 1, 0); h[4] = T.READ_DATA; return h; })()],
    ['EXIT of the wrong size', encodeFrame(T.EXIT, 1, Buffer.alloc(4))],
    ['empty STDOUT', encodeFrame(T.STDOUT, 1)],
    ['HELLO without magic', encodeFrame(T.HELLO, 0, Buffer.alloc(20))],
    ['READ_EOF with payload', encodeFrame(T.READ_EOF, 1, Buffer.from('x'))],
  ];
  for (const [what, frame] of bad) {
    const { d, frames, errors } = decoder();
    d.push(encodeFrame(T.HELLO, 0, encodeHello()));
    assert.doesNotThrow(() => d.push(Buffer.concat([frame, Buffer.from('garbage that follows'), encodeFrame(T.STDOUT, 3, Buffer.from('lost'))])), what);
    assert.equal(errors.length, 1, what);
    assert.equal(errors[0]!.code, 'ERR_AGENT_PROTOCOL');
    assert.equal(frames.length, 1, `${what}: nothing decoded after the violation`);
    // A restarted agent's HELLO, split in two, resynchronises.
    const hello = encodeFrame(T.HELLO, 0, encodeHello());
    d.push(Buffer.concat([Buffer.from('more junk'), hello.subarray(0, 10)]));
    d.push(Buffer.concat([hello.subarray(10), encodeFrame(T.STDOUT, 4, Buffer.from('ok'))]));
    assert.deepEqual(frames.map((f) => f.type), [T.HELLO, T.HELLO, T.STDOUT], what);
    assert.equal(errors.length, 1, what);
  }
});

test('a megabyte of random bytes never throws and holds at most one frame of memory', () => {
  let seed = 12345;
  const rnd = (): number => ((seed = (seed * 1103515245 + 12345) >>> 0) >>> 16) & 0xff;
  const { d, errors } = decoder();
  for (let i = 0; i < 256; i++) {
    const chunk = Buffer.alloc(4096);
    for (let j = 0; j < chunk.length; j++) chunk[j] = rnd();
    assert.doesNotThrow(() => d.push(chunk));
  }
  assert.ok(errors.length >= 1);
  assert.ok(d.counters.discardedBytes > 0);
});

test('payload parsers', () => {
  assert.deepEqual(parseExit(exit(3)), { exitCode: 3, signal: undefined });
  assert.deepEqual(parseExit(exit(9, true)), { exitCode: 137, signal: 9 });
  const e = Buffer.concat([Buffer.from([2, 0, 0, 0]), Buffer.from('open /x: No such file\x1b[31m')]);
  assert.deepEqual(parseError(e), { errno: 2, code: 'ENOENT', message: 'open /x: No such file?[31m' });
  const size = Buffer.alloc(8);
  size.writeUInt32LE(5, 0);
  size.writeUInt32LE(1, 4);
  assert.equal(parseReadSize(size), 2 ** 32 + 5);
  assert.equal(parseReadSize(Buffer.alloc(8, 0xff)), undefined);
});
