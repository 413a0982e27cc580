// A machine's console that nobody reads stays bounded: beyond STREAM_LIMIT unread bytes the
// readable side drops output and counts it; waitFor()/tail() and 'output' still see it all.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { MachineConsole, STREAM_LIMIT } from '../../lib/machine/console.js';

test('unread console output is dropped beyond STREAM_LIMIT and counted; waitFor still matches', async () => {
  const c = new MachineConsole(() => 0);
  let seen = 0;
  c.on('output', (chunk: Buffer) => { seen += chunk.length; });
  const total = 5 * STREAM_LIMIT + 123;
  const line = Buffer.from('flood flood flood flood flood flood flood flood flood flood flood\n');
  let sent = 0;
  for (let round = 0; sent < total; round++) {
    // As the run loop does: many bytes per event-loop turn, then the turn ends.
    for (let i = 0; i < 100_000 && sent < total; i++) c.guestByte(line[sent++ % line.length]!);
    await new Promise((r) => setImmediate(r));
  }
  c.guestByte(0x21); // '!'
  for (const b of Buffer.from('THE END\n')) c.guestByte(b);
  c.flush();
  assert.ok(c.readableLength <= STREAM_LIMIT, `readable side holds ${c.readableLength} bytes (limit ${STREAM_LIMIT})`);
  assert.equal(c.droppedBytes, total + 9 - c.readableLength, 'every byte not held is counted');
  assert.equal(seen, total + 9, "the 'output' event saw every byte");
  assert.equal(await c.waitFor('THE END', { timeout: 1000 }), 'THE END');
  assert.ok(c.output.length <= 1 << 20, 'the history is bounded too');
  // A reader that starts now gets what was held, in order, from the start.
  const first = c.read(line.length) as Buffer;
  assert.equal(first.toString(), line.toString());
});

test('a console that is read drops nothing', async () => {
  const c = new MachineConsole(() => 0);
  let got = 0;
  c.on('data', (d: Buffer) => { got += d.length; });
  const total = 3 * STREAM_LIMIT;
  for (let sent = 0; sent < total;) {
    for (let i = 0; i < 50_000 && sent < total; i++, sent++) c.guestByte(0x41);
    await new Promise((r) => setImmediate(r));
  }
  c.flush();
  await new Promise((r) => setImmediate(r));
  assert.equal(c.droppedBytes, 0);
  assert.equal(got, total);
});
