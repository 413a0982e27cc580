// A network partition with a link shaper, recorded to a pcap.
//   node --test dist/examples/partition.test.js
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { vmTest } from '../lib/testing/index.js';

vmTest('pings fail during a partition and work again after it', async (scope) => {
  const net = await scope.topology({
    vms: { a: { memory: '128M' }, b: { memory: '128M' } },
    links: [{ between: ['a', 'b'], shape: { delayMs: 20 } }],
  });
  const link = net.link('a', 'b');
  const pcap = link.capture('a-b.pcap');
  const a = net.vm('a');
  const ping = (): Promise<{ exitCode: number }> => a.exec(`ping -c 2 -W 2 ${net.ip('b')}`, { timeout: 30_000 });

  assert.equal((await ping()).exitCode, 0, 'reachable before');
  link.partition(true);
  assert.notEqual((await ping()).exitCode, 0, 'unreachable while partitioned');
  const dropped = link.stats().a!.egress.partitioned;
  assert.ok(dropped > 0, 'the shaper dropped frames');
  link.partition(false);
  assert.equal((await ping()).exitCode, 0, 'reachable after');
  link.stopCapture();

  const bytes = readFileSync(pcap);
  assert.equal(bytes.readUInt32LE(0), 0xa1b23c4d, 'nanosecond pcap');
  assert.ok(bytes.length > 24 + 4 * (16 + 98), 'the capture holds the ICMP exchanges');
});
