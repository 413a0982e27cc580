// A VLAN-tagged LargeSend frame from the RTL8139C+ reaches the host stack whole: the NIC puts
// the tag into the frame and hands it to the TAP as one GSO packet (no cutting here), the
// kernel takes it on the namespace's VLAN interface, and the one RST it answers with (tagged)
// acknowledges the whole payload. Needs root and /dev/net/tun (not /dev/kvm): in CI their
// absence FAILS the test, elsewhere it is skipped with a loud reason.
import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { accessSync, constants } from 'node:fs';
import { TapBackend } from '../../lib/net/tap.js';
import { NetNs, netnsUnavailableReason } from '../../lib/net/netns.js';
import { fillIpv4HeaderChecksum } from '../../lib/net/checksum.js';
import { fakeGuestMemory } from '../../lib/kvm/memory.js';
import { RecordingIrqLine } from '../../lib/bus/irq.js';
import { Rtl8139, regs as R } from '../../lib/devices/rtl8139/index.js';

const inCI = process.env.CI === 'true' || process.env.CI === '1';

function requireTap(t: TestContext): boolean {
  let why = netnsUnavailableReason();
  if (why === undefined) {
    try {
      accessSync('/dev/net/tun', constants.R_OK | constants.W_OK);
    } catch (e) {
      why = `/dev/net/tun not usable (${(e as NodeJS.ErrnoException).code}): modprobe tun`;
    }
  }
  if (why === undefined) return true;
  if (inCI) throw new Error(`CI requires TAP + netns support: ${why}`);
  process.stderr.write(`\n*** SKIPPING TAP TEST "${t.name}": ${why} ***\n`);
  t.skip(why);
  return false;
}

const GUEST_MAC = '52:54:00:12:34:56';
const VID = 5;

test('a VLAN-tagged LargeSend frame goes to the TAP whole and the host stack takes it on its VLAN interface', { timeout: 120_000 }, async (t) => {
  if (!requireTap(t)) return;
  const ns = await NetNs.create();
  const tap = TapBackend.open();
  try {
    assert.equal(tap.segmentationOffload, true);
    await ns.adoptLink(tap.name);
    // A kernel without 802.1Q (no 8021q module, or no modprobe to load it: this host, the
    // lab's read-only root) still shows the frame accepted whole; the RST needs the VLAN.
    let vlan = true;
    try {
      await ns.ip(['link', 'add', 'link', tap.name, 'name', 'v5', 'type', 'vlan', 'id', String(VID)]);
      await ns.ip(['addr', 'add', '10.0.5.2/24', 'dev', 'v5']);
      await ns.ip(['link', 'set', 'v5', 'up']);
      await ns.ip(['neigh', 'replace', '10.0.5.15', 'lladdr', GUEST_MAC, 'dev', 'v5', 'nud', 'permanent']);
    } catch (e) {
      vlan = false;
      t.diagnostic(`no VLAN interface in the namespace (${(e as Error).message.split('\n')[0]}): checking the hand-off and the kernel's RX count only`);
    }
    const link = JSON.parse((await ns.ip(['-j', 'link', 'show', 'dev', vlan ? 'v5' : tap.name])).stdout) as Array<{ address: string }>;
    const nsMac = link[0]!.address.split(':').map((h) => parseInt(h, 16));
    const rxPackets = async (): Promise<{ packets: number; bytes: number }> => {
      const j = JSON.parse((await ns.ip(['-j', '-s', 'link', 'show', 'dev', tap.name])).stdout) as Array<{ stats64: { rx: { packets: number; bytes: number } } }>;
      return j[0]!.stats64.rx;
    };
    const before = await rxPackets();

    const mem = fakeGuestMemory([{ guestPhysAddr: 0, size: 0x100000 }]);
    const nic = new Rtl8139({ mem, clock: { nowNs: () => 0n }, timers: { schedule: () => () => {} }, mac: GUEST_MAC });
    nic.attach({ map: () => {}, unmap: () => {} }, new RecordingIrqLine());
    nic.attachBackend(tap);
    const resets: Array<{ ack: number; flags: number }> = [];
    tap.onReceive((f) => {
      // Tagged with our VID, IPv4/TCP from port 9.
      if (f.length >= 58 && f[12] === 0x81 && f[13] === 0 && (((f[14]! << 8) | f[15]!) & 0xfff) === VID && f[16] === 8 && f[27] === 6 && f[38] === 0 && f[39] === 9) {
        resets.push({ ack: new DataView(f.buffer, f.byteOffset).getUint32(46), flags: f[51]! });
      }
    });
    const w = (o: number, s: number, v: number): void => nic.mmioBar.write(o, s, v);
    w(R.CpCmd, 2, R.CpTxOn);
    w(R.TxRingAddr, 4, 0x1000);
    w(R.ChipCmd, 1, R.CmdTxEnb);

    // An untagged TCP frame (the tag comes from the descriptor): guest 10.0.5.15 -> 10.0.5.2:9.
    const payload = 3000;
    const seq = 0x02000000;
    const f = new Uint8Array(54 + payload);
    f.set(nsMac, 0);
    f.set(GUEST_MAC.split(':').map((h) => parseInt(h, 16)), 6);
    f[12] = 0x08;
    f[14] = 0x45;
    f[16] = (40 + payload) >> 8; f[17] = (40 + payload) & 0xff;
    f[20] = 0x40;
    f[22] = 64; f[23] = 6;
    f.set([10, 0, 5, 15, 10, 0, 5, 2], 26);
    f[34] = 0xc0; f[35] = 0x01; f[36] = 0; f[37] = 9;
    new DataView(f.buffer).setUint32(38, seq);
    f[46] = 0x50; f[47] = 0x08; f[48] = 0xff; f[49] = 0xff;
    fillIpv4HeaderChecksum(f, 14);
    mem.write(0x10000, f);
    const swab = ((VID & 0xff) << 8) | (VID >> 8); // 8139cp's byte-swapped tag in opts2
    mem.writeU32(0x1000 + 4, (R.TxVlanTag | swab) >>> 0);
    mem.writeU32(0x1000 + 8, 0x10000);
    mem.writeU32(0x1000 + 12, 0);
    mem.writeU32(0x1000, (R.DescOwn | R.FirstFrag | R.LastFrag | R.RingEnd | R.LargeSend | (1000 << R.MSSShift) | f.length) >>> 0);
    w(R.TxPoll, 1, R.NormalTxPoll);

    for (let i = 0; i < 100 && vlan && resets.length === 0; i++) {
      tap.pollReceive();
      if (resets.length === 0) await new Promise((resolve) => setTimeout(resolve, 20));
    }
    t.diagnostic(`resets ${JSON.stringify(resets)}; TAP ${JSON.stringify(tap.stats)}; NIC txFrames ${nic.stats.txFrames}`);
    assert.equal(mem.readU32(0x1000) & (R.DescOwn | R.TxError), 0, 'descriptor completed without error');
    assert.equal(tap.stats.txSegmented, 1, 'handed over whole, tag and all');
    assert.equal(tap.stats.txSegments, 3);
    assert.equal(tap.stats.txFrames, 1);
    assert.equal(nic.stats.txFrames, 3, 'counted as the segments it makes');
    const after = await rxPackets();
    t.diagnostic(`host side of the TAP: ${after.packets - before.packets} packet(s), ${after.bytes - before.bytes} bytes`);
    assert.equal(after.packets - before.packets, 1, 'the kernel took one packet');
    assert.equal(after.bytes - before.bytes, f.length + 4, 'the whole frame, tag included');
    nic.close();
    if (!vlan) return;
    assert.equal(resets.length, 1, 'one RST: the stack took the frame as one packet');
    assert.equal(resets[0]!.flags & 0x14, 0x14, 'RST+ACK');
    assert.equal(resets[0]!.ack, seq + payload, 'the RST acknowledges the whole payload');
  } finally {
    tap.close();
    await ns.close();
  }
});
