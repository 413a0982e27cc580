import { test } from 'node:test';
import assert from 'node:assert/strict';
import { L2Switch, createPipe } from '../../lib/net/index.js';
import { fakeGuestMemory } from '../../lib/kvm/memory.js';
import { Rtl8139, regs as R } from '../../lib/devices/rtl8139/index.js';

function eth(dst: number[], src: number[], tag = 0): Uint8Array {
  const f = new Uint8Array(60);
  f.set(dst, 0);
  f.set(src, 6);
  f[12] = 0x08;
  f[14] = tag;
  return f;
}
const A = [2, 0, 0, 0, 0, 0xa];
const B = [2, 0, 0, 0, 0, 0xb];
const C = [2, 0, 0, 0, 0, 0xc];
const BCAST = [255, 255, 255, 255, 255, 255];

function threePorts(opts?: ConstructorParameters<typeof L2Switch>[0]) {
  const sw = new L2Switch(opts);
  const ports = [sw.port('a'), sw.port('b'), sw.port('c')];
  const got: number[][] = [[], [], []];
  ports.forEach((p, i) => p.onReceive((f) => got[i]!.push(f[14]!)));
  return { sw, ports, got };
}

test('unknown unicast and broadcast flood to all other ports', () => {
  const { sw, ports, got } = threePorts();
  ports[0]!.send(eth(B, A, 1));
  ports[0]!.send(eth(BCAST, A, 2));
  assert.deepEqual(got, [[], [1, 2], [1, 2]]);
  assert.equal(sw.stats.flooded, 2);
});

test('learned destinations are forwarded to one port only', () => {
  const { sw, ports, got } = threePorts();
  ports[1]!.send(eth(BCAST, B, 1)); // learn B on port 1
  ports[0]!.send(eth(B, A, 2));
  assert.deepEqual(got, [[1], [2], [1]]);
  assert.equal(sw.stats.forwarded, 1);
  assert.equal(sw.lookup('02:00:00:00:00:0b')?.name, 'b');
  ports[1]!.send(eth(B, C, 3)); // destination on the sending port: filtered
  assert.equal(sw.stats.filtered, 1);
});

test('ageing forgets MACs; a moved MAC is re-learned; closed ports are forgotten', () => {
  let now = 0;
  const { sw, ports, got } = threePorts({ ageingMs: 1000, now: () => now });
  ports[1]!.send(eth(BCAST, B, 1));
  now = 2000;
  ports[0]!.send(eth(B, A, 2));
  assert.deepEqual(got[2], [1, 2], 'aged out: flooded');
  ports[2]!.send(eth(BCAST, B, 3)); // B moved to port c
  ports[0]!.send(eth(B, A, 4));
  assert.deepEqual(got[2], [1, 2, 4], 'forwarded to the new port');
  assert.deepEqual(got[1], [2, 3]);
  ports[2]!.close();
  ports[0]!.send(eth(B, A, 5));
  assert.deepEqual(got[1], [2, 3, 5]);
  sw.close();
});

test('port carrier down stops delivery both ways and is seen by listeners', () => {
  const { ports, got } = threePorts();
  const seen: boolean[] = [];
  ports[1]!.onLinkChange((up) => seen.push(up));
  ports[1]!.setCarrier(false);
  ports[0]!.send(eth(BCAST, A, 1));
  ports[1]!.send(eth(BCAST, B, 2));
  assert.deepEqual(got, [[], [], [1]]);
  assert.deepEqual(seen, [false]);
});

test('two RTL8139s talk through the switch; a pipe is a cable', () => {
  const sw = new L2Switch();
  const nics = [0, 1].map((i) => {
    const mem = fakeGuestMemory([{ guestPhysAddr: 0, size: 0x20000 }]);
    const nic = new Rtl8139({ mem, clock: { nowNs: () => 0n }, timers: { schedule: () => () => {} }, revision: 0x10, mac: `52:54:00:00:00:0${i}` });
    nic.attachBackend(sw.port());
    nic.ioBar.write(R.RxBuf, 4, 0x10000);
    nic.ioBar.write(R.ChipCmd, 1, R.CmdRxEnb | R.CmdTxEnb);
    nic.ioBar.write(R.RxConfig, 4, R.AcceptMyPhys | R.AcceptBroadcast);
    return { nic, mem };
  });
  const f = eth([0x52, 0x54, 0, 0, 0, 1], [0x52, 0x54, 0, 0, 0, 0], 0x42);
  nics[0]!.mem.write(0x1000, f);
  nics[0]!.nic.ioBar.write(R.TxAddr0, 4, 0x1000);
  nics[0]!.nic.ioBar.write(R.TxStatus0, 4, f.length);
  assert.equal(nics[1]!.nic.stats.rxFrames, 1);
  assert.deepEqual(nics[1]!.mem.read(0x10000 + 4, f.length), f);
  const [x, y] = createPipe();
  const heard: Uint8Array[] = [];
  y.onReceive((fr) => heard.push(fr));
  x.send(f);
  assert.equal(heard.length, 1);
  let yUp = true;
  y.onLinkChange((up) => { yUp = up; });
  x.close();
  assert.equal(yUp, false);
  sw.close();
});
