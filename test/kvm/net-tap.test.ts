// The TAP backend against the real kernel: a fresh network namespace on the far side of the TAP
// pings a made-up address, and this test answers as that host (ARP reply + ICMP echo reply)
// through send(). Needs root and /dev/net/tun: in CI (CI=true) their absence FAILS the test,
// elsewhere the test is skipped with a loud reason.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { accessSync, constants, readdirSync } from 'node:fs';
import type { TestContext } from 'node:test';
import { TapBackend } from '../../lib/net/tap.js';
import { NetNs, findCommand, netnsUnavailableReason, pingArgv } from '../../lib/net/netns.js';
import { fillIpv4HeaderChecksum, internetChecksum } from '../../lib/net/checksum.js';
import { native } from '../../lib/native.js';
import { VNET_F_NEEDS_CSUM, VNET_GSO_ECN, VNET_GSO_NONE, VNET_GSO_TCPV4 } from '../../lib/net/receive-offload.js';

const inCI = process.env.CI === 'true' || process.env.CI === '1';

function tapUnavailableReason(): string | undefined {
  const ns = netnsUnavailableReason();
  if (ns !== undefined) return ns;
  try {
    accessSync('/dev/net/tun', constants.R_OK | constants.W_OK);
  } catch (e) {
    return `/dev/net/tun not usable (${(e as NodeJS.ErrnoException).code}): modprobe tun`;
  }
  if (findCommand('ping') === undefined && findCommand('busybox') === undefined)
    return 'no ping: install iputils-ping (or busybox)';
  return undefined;
}

/** Call first; false when the test was skipped (outside CI). */
function requireTap(t: TestContext): boolean {
  const why = tapUnavailableReason();
  if (why === undefined) return true;
  if (inCI) throw new Error(`CI requires TAP + netns support: ${why}`);
  process.stderr.write(`\n*** SKIPPING TAP TEST "${t.name}": ${why} ***\n`);
  t.skip(why);
  return false;
}

const fdCount = (): number => readdirSync('/proc/self/fd').length;
const threadCount = (): number => readdirSync('/proc/self/task').length;
const nextTurn = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

// The made-up host behind the TAP, and the namespace's side of the link.
const GUEST_MAC = Uint8Array.of(0x52, 0x54, 0x00, 0x12, 0x34, 0x56);
const GUEST_IP = Uint8Array.of(10, 0, 2, 15);
const NS_IP = Uint8Array.of(10, 0, 2, 2);

const be16 = (b: Uint8Array, o: number): number => (b[o]! << 8) | b[o + 1]!;
const eqBytes = (a: Uint8Array, b: Uint8Array): boolean => a.length === b.length && a.every((v, i) => v === b[i]);

interface ArpRequest { senderMac: Uint8Array; senderIp: Uint8Array; targetIp: Uint8Array }

function parseArpRequest(f: Uint8Array): ArpRequest | undefined {
  if (f.length < 42 || be16(f, 12) !== 0x0806) return undefined;
  if (be16(f, 14) !== 1 || be16(f, 16) !== 0x0800 || f[18] !== 6 || f[19] !== 4 || be16(f, 20) !== 1) return undefined;
  return { senderMac: f.slice(22, 28), senderIp: f.slice(28, 32), targetIp: f.slice(38, 42) };
}

function arpReply(req: ArpRequest): Uint8Array {
  const f = new Uint8Array(42);
  f.set(req.senderMac, 0);
  f.set(GUEST_MAC, 6);
  f.set([0x08, 0x06, 0, 1, 0x08, 0x00, 6, 4, 0, 2], 12);
  f.set(GUEST_MAC, 22);
  f.set(GUEST_IP, 28);
  f.set(req.senderMac, 32);
  f.set(req.senderIp, 38);
  return f;
}

/** The echo reply for an ICMP echo request to GUEST_IP, or undefined for any other frame. */
function icmpEchoReply(req: Uint8Array): Uint8Array | undefined {
  if (req.length < 14 + 20 + 8 || be16(req, 12) !== 0x0800) return undefined;
  const ip = 14;
  const ihl = (req[ip]! & 0x0f) * 4;
  const total = be16(req, ip + 2);
  if (req[ip + 9] !== 1 || !eqBytes(req.subarray(ip + 16, ip + 20), GUEST_IP)) return undefined;
  const icmp = ip + ihl;
  if (req[icmp] !== 8) return undefined;
  const f = req.slice(0, ip + total);
  f.set(req.subarray(6, 12), 0);
  f.set(GUEST_MAC, 6);
  f.set(req.subarray(ip + 16, ip + 20), ip + 12);
  f.set(req.subarray(ip + 12, ip + 16), ip + 16);
  f[ip + 8] = 64;
  fillIpv4HeaderChecksum(f, ip);
  f[icmp] = 0;
  f[icmp + 2] = 0;
  f[icmp + 3] = 0;
  const c = internetChecksum(f, icmp, ip + total);
  f[icmp + 2] = c >>> 8;
  f[icmp + 3] = c & 0xff;
  return f;
}

/** An ICMP echo request from GUEST_IP to the namespace, addressed to its MAC. */
function icmpEchoRequest(dstMac: Uint8Array): Uint8Array {
  const ip = 14;
  const icmp = ip + 20;
  const f = new Uint8Array(icmp + 16);
  f.set(dstMac, 0);
  f.set(GUEST_MAC, 6);
  f.set([0x08, 0x00], 12);
  f.set([0x45, 0, 0, 20 + 16, 0, 1, 0x40, 0, 64, 1], ip);
  f.set(GUEST_IP, ip + 12);
  f.set(NS_IP, ip + 16);
  fillIpv4HeaderChecksum(f, ip);
  f.set([8, 0, 0, 0, 0x12, 0x34, 0, 1], icmp);
  const c = internetChecksum(f, icmp, f.length);
  f[icmp + 2] = c >>> 8;
  f[icmp + 3] = c & 0xff;
  return f;
}

/** A broadcast ARP who-has 10.0.4.2 from 10.0.4.(10 + i % 200), MAC 52:54:00:00:00:i. */
function arpRequest(i: number): Uint8Array {
  const f = new Uint8Array(42);
  f.fill(0xff, 0, 6);
  f.set([0x52, 0x54, 0x00, 0x00, 0x00, i & 0xff], 6);
  f.set([0x08, 0x06, 0x00, 0x01, 0x08, 0x00, 6, 4, 0x00, 0x01], 12);
  f.set(f.subarray(6, 12), 22);
  f.set([10, 0, 4, 10 + (i % 200)], 28);
  f.set([10, 0, 4, 2], 38);
  return f;
}

const macText = (m: Uint8Array): string => [...m].map((b) => b.toString(16).padStart(2, '0')).join(':');
const ipText = (a: Uint8Array): string => [...a].join('.');

test('a netns pings a made-up host behind the TAP: ARP request in, ARP + ICMP echo replies out', { timeout: 120_000 }, async (t) => {
  if (!requireTap(t)) return;
  const ns = await NetNs.create();
  const tap = TapBackend.open();
  try {
    assert.equal(tap.linkUp, true);
    assert.match(tap.name, /^tap\d+$/);
    const arps: ArpRequest[] = [];
    let echoes = 0;
    tap.onReceive((frame) => {
      const arp = parseArpRequest(frame);
      if (arp !== undefined) {
        arps.push(arp);
        if (eqBytes(arp.targetIp, GUEST_IP)) tap.send(arpReply(arp));
        return;
      }
      const reply = icmpEchoReply(frame);
      if (reply !== undefined) {
        echoes++;
        tap.send(reply);
      }
    });
    await ns.adoptLink(tap.name, `${ipText(NS_IP)}/24`);
    const ping = await ns.exec(pingArgv(ipText(GUEST_IP), { count: 1, timeoutS: 5 }), { check: false, timeoutMs: 20_000 });
    t.diagnostic(`ping exit ${ping.code}: ${ping.stdout.trim().split('\n').slice(-2).join(' | ')}`);
    t.diagnostic(`stats ${JSON.stringify(tap.stats)}`);
    assert.equal(ping.code, 0, `ping failed: ${ping.stdout}${ping.stderr}`);

    const req = arps.find((a) => eqBytes(a.targetIp, GUEST_IP));
    assert.ok(req !== undefined, 'no ARP request for the made-up address reached the TAP');
    assert.deepEqual([...req.senderIp], [...NS_IP]);
    assert.equal(echoes, 1);
    assert.ok(tap.stats.txFrames >= 2 && tap.stats.txDropped === 0 && tap.stats.txErrors === 0);
    assert.ok(tap.stats.rxFrames >= 2 && tap.stats.rxBatches >= 1 && tap.stats.rxBatches <= tap.stats.rxFrames);
    // The namespace's kernel learnt our MAC from the ARP reply we wrote.
    const neigh = await ns.ip(['neigh', 'show', ipText(GUEST_IP), 'dev', tap.name]);
    assert.match(neigh.stdout, new RegExp(macText(GUEST_MAC)));

    // The namespace's kernel answers inside the write: once the writer thread has written the
    // request (flushWrites), pollReceive() hands the reply over synchronously, before the
    // event loop turns.
    let replies = 0;
    const off = tap.onReceive((f) => {
      if (f.length >= 42 && be16(f, 12) === 0x0800 && f[14 + 9] === 1 && f[34] === 0 && eqBytes(f.subarray(30, 34), GUEST_IP)) replies++;
    });
    tap.send(icmpEchoRequest(req.senderMac));
    tap.flushWrites();
    tap.pollReceive();
    off();
    assert.equal(replies, 1, 'the echo reply was not waiting right after the write');

    // Paused, nothing is read and the ping goes unanswered; resumed, the queued request arrives.
    tap.pauseReceive();
    const rx = tap.stats.rxFrames;
    const unanswered = await ns.exec(pingArgv(ipText(GUEST_IP), { count: 1, timeoutS: 1 }), { check: false, timeoutMs: 20_000 });
    assert.notEqual(unanswered.code, 0);
    assert.equal(tap.stats.rxFrames, rx);
    tap.resumeReceive();
    const again = await ns.exec(pingArgv(ipText(GUEST_IP), { count: 1, timeoutS: 5 }), { check: false, timeoutMs: 20_000 });
    assert.equal(again.code, 0, `ping after resume failed: ${again.stdout}${again.stderr}`);
    assert.ok(echoes >= 2);
  } finally {
    tap.close();
    await ns.close();
  }
});

test('a TAP name in use gives ERR_TAP_BUSY; the name is free again after close()', (t) => {
  if (!requireTap(t)) return;
  const name = `nkb${process.pid % 1_000_000}`;
  const a = TapBackend.open({ name });
  try {
    assert.equal(a.name, name);
    assert.equal(a.persistent, false);
    assert.throws(() => TapBackend.open({ name }), (e: NodeJS.ErrnoException) => {
      assert.equal(e.code, 'ERR_TAP_BUSY');
      assert.match(e.message, /already in use/);
      return true;
    });
    assert.throws(() => TapBackend.open({ name: 'lo' }), { code: 'ERR_TAP_BUSY', message: /not a TAP device/ });
    assert.throws(() => TapBackend.open({ name: 'much-too-long-name' }), { code: 'ERR_INVALID_ARG' });
  } finally {
    a.close();
  }
  a.close(); // idempotent
  const again = TapBackend.open({ name });
  again[Symbol.dispose]();
});

test('without CAP_NET_ADMIN, open fails with ERR_TAP_PERMISSION and says how to fix it', (t) => {
  if (!requireTap(t)) return;
  const setpriv = findCommand('setpriv');
  if (setpriv === undefined) {
    // util-linux is essential on Debian; elsewhere the mapping is still covered by the message tests
    if (inCI) throw new Error('CI requires setpriv (util-linux)');
    t.skip('setpriv (util-linux) not installed');
    return;
  }
  const tapUrl = new URL('../../lib/net/tap.js', import.meta.url).href;
  const script = `import { TapBackend } from ${JSON.stringify(tapUrl)};
try { TapBackend.open(); console.log('opened'); } catch (e) { console.log(JSON.stringify({ code: e.code, message: e.message })); }`;
  const r = spawnSync(setpriv, ['--bounding-set=-net_admin', process.execPath, '--input-type=module', '-e', script],
    { encoding: 'utf8', timeout: 120_000 });
  assert.equal(r.status, 0, r.stderr);
  const out = JSON.parse(r.stdout) as { code: string; message: string };
  assert.equal(out.code, 'ERR_TAP_PERMISSION');
  assert.match(out.message, /CAP_NET_ADMIN/);
  assert.match(out.message, /setcap cap_net_admin\+ep/);
});

test('without /dev/net/tun, open fails with ERR_TAP_UNAVAILABLE and suggests modprobe tun', (t) => {
  if (!requireTap(t)) return;
  const unshare = findCommand('unshare');
  if (unshare === undefined) {
    if (inCI) throw new Error('CI requires unshare (util-linux)');
    t.skip('unshare (util-linux) not installed');
    return;
  }
  const tapUrl = new URL('../../lib/net/tap.js', import.meta.url).href;
  const script = `import { TapBackend } from ${JSON.stringify(tapUrl)};
try { TapBackend.open(); console.log('opened'); } catch (e) { console.log(JSON.stringify({ code: e.code, message: e.message })); }`;
  // A private mount namespace with an empty /dev/net hides the device from the child only.
  const r = spawnSync(unshare, ['--mount', '--propagation', 'private', 'sh', '-c',
    'mount -t tmpfs none /dev/net && exec "$0" --input-type=module -e "$1"', process.execPath, script],
  { encoding: 'utf8', timeout: 120_000 });
  assert.equal(r.status, 0, r.stderr);
  const out = JSON.parse(r.stdout) as { code: string; message: string };
  assert.equal(out.code, 'ERR_TAP_UNAVAILABLE');
  assert.match(out.message, /modprobe tun/);
});

test('close() releases the fd and the poll handle (50 open/close cycles)', { timeout: 300_000 }, async (t) => {
  if (!requireTap(t)) return;
  let cycle = 0;
  const once = async (): Promise<void> => {
    const tap = TapBackend.open({ writeThread: cycle++ % 2 === 0 });
    tap.onReceive(() => undefined);
    tap.send(new Uint8Array(60)); // host side down: counted, not thrown
    assert.equal(tap.stats.txDropped + tap.stats.txFrames, 1);
    tap.close();
    tap.close();
    assert.equal(tap.linkUp, false);
    await nextTurn();
  };
  await once();
  await nextTurn();
  const fds0 = fdCount();
  const readers0 = native().tapReaderCount();
  const writers0 = native().tapWriterCount();
  const threads0 = threadCount();
  for (let i = 0; i < 50; i++) await once();
  await nextTurn();
  t.diagnostic(`fds ${fds0} -> ${fdCount()}, live poll handles ${readers0} -> ${native().tapReaderCount()}, writer threads ${writers0} -> ${native().tapWriterCount()}, threads ${threads0} -> ${threadCount()}`);
  assert.equal(fdCount(), fds0);
  assert.equal(native().tapReaderCount(), readers0);
  assert.equal(native().tapWriterCount(), writers0);
  assert.equal(threadCount(), threads0);
});

test('the writer thread: every frame sent is written and counted, the host answers them, a bad queue size is refused', { timeout: 60_000 }, async (t) => {
  if (!requireTap(t)) return;
  assert.throws(() => TapBackend.open({ writeThread: true, writeQueueBytes: 1000 }), { code: 'ERR_INVALID_ARG' });
  const ns = await NetNs.create();
  const tap = TapBackend.open({ writeThread: true });
  const sync = TapBackend.open();
  try {
    await ns.adoptLink(tap.name, '10.0.4.2/24');
    // 200 ARP requests from the guest's side: the host stack answers each one it received.
    const replies: number[] = [];
    tap.onReceive((f) => {
      if (f.length >= 42 && f[12] === 0x08 && f[13] === 0x06 && f[21] === 2) replies.push((f[38]! << 24 | f[39]! << 16 | f[40]! << 8 | f[41]!) >>> 0);
    });
    for (let i = 0; i < 200; i++) tap.send(arpRequest(i));
    const s = tap.stats; // waits for the queue to drain: every send above is counted
    assert.equal(s.txFrames + s.txDropped, 200);
    assert.equal(s.txErrors, 0);
    assert.equal(s.txBytes, s.txFrames * 42);
    // A deadline, not a number of sleeps: a loaded host's stack may take seconds to answer.
    const repliesBy = Date.now() + 30_000;
    while (replies.length < s.txFrames && Date.now() < repliesBy) await new Promise((resolve) => setTimeout(resolve, 20));
    t.diagnostic(`written ${s.txFrames}, dropped ${s.txDropped}, replies ${replies.length}`);
    assert.ok(replies.length > 0);
    // On the calling thread nothing is queued: the counts are there at once.
    sync.send(arpRequest(0));
    assert.equal(sync.stats.txFrames + sync.stats.txDropped, 1);
  } finally {
    tap.close();
    sync.close();
    await ns.close();
  }
  // Closed: the last counts stay readable, and the thread is gone.
  assert.equal(tap.stats.txFrames + tap.stats.txDropped, 200);
});

/**
 * Run an ESM snippet in a child node; resolves with its exit code, or 'timeout' when it is still
 * running `ms` after it started (or, with `marker`, after it printed the marker).
 */
function runChild(script: string, ms: number, marker?: string): Promise<number | string> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, ['--input-type=module', '-e', script], { stdio: ['ignore', 'pipe', 'inherit'] });
    let timer: NodeJS.Timeout | undefined;
    const arm = (): void => {
      timer = setTimeout(() => {
        child.kill('SIGKILL');
        resolve('timeout');
      }, ms);
    };
    let out = '';
    child.stdout.on('data', (d: Buffer) => {
      out += d.toString();
      if (marker !== undefined && timer === undefined && out.includes(marker)) arm();
    });
    if (marker === undefined) arm();
    child.once('exit', (code, signal) => {
      clearTimeout(timer);
      resolve(code ?? `signal ${signal ?? '?'}`);
    });
  });
}

test('a process that opened and closed a TAP exits by itself; an open one stays alive unless unref()', { timeout: 180_000 }, async (t) => {
  if (!requireTap(t)) return;
  const tapUrl = JSON.stringify(new URL('../../lib/net/tap.js', import.meta.url).href);
  // Timed from the moment the TAP is open, so a slow node start-up (the lab) does not count.
  const closes = `import { TapBackend } from ${tapUrl};
const tap = TapBackend.open();
tap.onReceive(() => {});
console.log('open');
setTimeout(() => tap.close(), 100);`;
  assert.equal(await runChild(closes, 10_000, 'open'), 0, 'child with a closed TAP did not exit by itself');

  const unrefd = `import { TapBackend } from ${tapUrl};
TapBackend.open({ ref: false }).onReceive(() => {});
console.log('open');`;
  assert.equal(await runChild(unrefd, 10_000, 'open'), 0, 'child with an unref()d TAP did not exit by itself');

  const open = `import { TapBackend } from ${tapUrl};
TapBackend.open();
console.log('open');`;
  assert.equal(await runChild(open, 1500, 'open'), 'timeout', 'an open, referenced TAP should keep the process alive');
});

test('a worker that exits with a TAP still open leaks no fd and does not crash', { timeout: 180_000 }, async (t) => {
  if (!requireTap(t)) return;
  const tapUrl = JSON.stringify(new URL('../../lib/net/tap.js', import.meta.url).href);
  // In a child process, so that a crash in teardown is reported rather than taking the runner down.
  const script = `import { Worker } from 'node:worker_threads';
import { readdirSync } from 'node:fs';
const fds = () => readdirSync('/proc/self/fd').length;
let before = 0;
for (let i = 0; i < 4; i++) {
  const w = new Worker('import(' + ${JSON.stringify(tapUrl)} + ').then(({ TapBackend }) => {'
    + ' TapBackend.open().onReceive(() => {}); setTimeout(() => process.exit(0), 20); });', { eval: true });
  await new Promise((resolve) => w.once('exit', resolve));
  if (i === 0) before = fds(); // the first worker also opens Node's own lazily created fds
}
process.exit(fds() === before ? 0 : 7);`;
  assert.equal(await runChild(script, 120_000), 0);
});

/** An IPv4/TCP segment from the guest to the namespace without ACK (port 9: nobody listens). */
function tcpToNs(dstMac: Uint8Array, seq: number, payload: number): Uint8Array {
  const f = new Uint8Array(54 + payload);
  f.set(dstMac, 0);
  f.set(GUEST_MAC, 6);
  f[12] = 0x08;
  f[14] = 0x45;
  f[16] = (40 + payload) >> 8; f[17] = (40 + payload) & 0xff;
  f[20] = 0x40; // DF
  f[22] = 64; f[23] = 6;
  f.set(GUEST_IP, 26);
  f.set(NS_IP, 30);
  f[34] = 0xc0; f[35] = 0x01; f[36] = 0; f[37] = 9;
  new DataView(f.buffer).setUint32(38, seq);
  f[46] = 0x50;
  f[47] = 0x08; // PSH
  f[48] = 0xff; f[49] = 0xff;
  for (let i = 0; i < payload; i++) f[54 + i] = i & 0xff;
  fillIpv4HeaderChecksum(f, 14);
  // CHECKSUM_PARTIAL: the pseudo-header sum only (TcpSegmentation's convention).
  const pseudo = [...f.subarray(26, 34)].reduce((a, b, i) => a + (i % 2 === 0 ? b << 8 : b), 0) + 6 + 20 + payload;
  let sum = pseudo;
  while (sum > 0xffff) sum = (sum & 0xffff) + (sum >>> 16);
  f[50] = sum >> 8; f[51] = sum & 0xff;
  return f;
}

test('a TSO frame goes to the host stack whole (virtio-net GSO header): one RST acknowledging all of it', { timeout: 120_000 }, async (t) => {
  if (!requireTap(t)) return;
  const ns = await NetNs.create();
  const tap = TapBackend.open();
  try {
    assert.equal(tap.segmentationOffload, true);
    await ns.adoptLink(tap.name, `${ipText(NS_IP)}/24`);
    await ns.ip(['neigh', 'replace', ipText(GUEST_IP), 'lladdr', macText(GUEST_MAC), 'dev', tap.name, 'nud', 'permanent']);
    const link = JSON.parse((await ns.ip(['-j', 'link', 'show', 'dev', tap.name])).stdout) as Array<{ address: string }>;
    const nsMac = Uint8Array.from(link[0]!.address.split(':').map((h) => parseInt(h, 16)));
    const resets: Array<{ seq: number; ack: number; flags: number }> = [];
    tap.onReceive((f) => {
      if (f.length >= 54 && be16(f, 12) === 0x0800 && f[23] === 6 && be16(f, 34) === 9) {
        const dv = new DataView(f.buffer, f.byteOffset, f.byteLength);
        resets.push({ seq: dv.getUint32(38), ack: dv.getUint32(42), flags: f[47]! });
      }
    });
    const seq = 0x01000000;
    const payload = 3000;
    const frame = tcpToNs(nsMac, seq, payload);
    assert.equal(tap.sendSegmented(frame, { mss: 1000, l4Offset: 34, headerLength: 54, segments: 3 }), true);
    for (const resetBy = Date.now() + 30_000; resets.length === 0 && Date.now() < resetBy;) {
      tap.pollReceive();
      if (resets.length === 0) await new Promise((resolve) => setTimeout(resolve, 20));
    }
    t.diagnostic(`resets ${JSON.stringify(resets)} stats ${JSON.stringify(tap.stats)}`);
    assert.equal(resets.length, 1, 'one RST: the stack took the frame as one packet');
    assert.equal(resets[0]!.flags & 0x14, 0x14, 'RST+ACK');
    assert.equal(resets[0]!.ack, seq + payload, 'the RST acknowledges the whole payload');
    assert.equal(tap.stats.txSegmented, 1);
    assert.equal(tap.stats.txSegments, 3);
    assert.equal(tap.stats.txBytes, frame.length);
    // What the 16-bit header fields cannot carry is refused with a code, not truncated.
    for (const bad of [{ mss: 0 }, { mss: 0x10000 }, { headerLength: 30 }, { headerLength: frame.length + 1 }])
      assert.throws(() => tap.sendSegmented(frame, { mss: 1000, l4Offset: 34, headerLength: 54, segments: 3, ...bad }), { code: 'ERR_INVALID_ARG' });
    assert.equal(tap.stats.txFrames, 1);

    // Without the offload the TAP refuses, and the NIC cuts the frame itself.
    const plain = TapBackend.open({ segmentationOffload: false });
    try {
      assert.equal(plain.segmentationOffload, false);
      assert.equal(plain.sendSegmented(frame, { mss: 1000, l4Offset: 34, headerLength: 54, segments: 3 }), false);
      assert.equal(plain.stats.txFrames, 0);
    } finally {
      plain.close();
    }
  } finally {
    tap.close();
    await ns.close();
  }
});

// Two TAPs bridged here, each in its own namespace: TCP between the namespaces crosses this
// process. With receive offloads the sending stack hands us 64 KiB super-frames and frames
// with their checksum left undone; what we pass on is plain frames (no offload header), which
// the receiving kernel checks in full. A pause in the middle holds a batch and resumes it.
const BRIDGE_SENDER = `
const net = require('node:net'), crypto = require('node:crypto');
const data = crypto.randomBytes(Number(process.argv[2]));
const s = net.connect(5001, process.argv[1], () => s.end(data));
s.on('close', () => console.log(crypto.createHash('sha256').update(data).digest('hex')));
s.on('error', (e) => { console.error(e.message); process.exit(1); });`;
const BRIDGE_RECEIVER = `
const net = require('node:net'), crypto = require('node:crypto');
const srv = net.createServer((c) => { const h = crypto.createHash('sha256'); let n = 0;
  c.on('data', (b) => { h.update(b); n += b.length; });
  c.on('end', () => { console.log(n + ' ' + h.digest('hex')); srv.close(); }); });
srv.listen(5001, () => console.log('listening'));`;

function outputOf(child: ReturnType<NetNs['spawn']>): Promise<string> {
  let out = '';
  let err = '';
  child.stdout!.on('data', (b: Buffer) => { out += b.toString(); });
  child.stderr!.on('data', (b: Buffer) => { err += b.toString(); });
  return new Promise((resolve, reject) => child.once('exit', (code) => (code === 0 ? resolve(out) : reject(new Error(`exit ${code}: ${err}`)))));
}

test('the receive-offload constants are <linux/virtio_net.h> and the kernel layout', () => {
  const c = native().constants;
  assert.equal(VNET_F_NEEDS_CSUM, c.VIRTIO_NET_HDR_F_NEEDS_CSUM);
  assert.equal(VNET_GSO_NONE, c.VIRTIO_NET_HDR_GSO_NONE);
  assert.equal(VNET_GSO_TCPV4, c.VIRTIO_NET_HDR_GSO_TCPV4);
  assert.equal(VNET_GSO_ECN, c.VIRTIO_NET_HDR_GSO_ECN);
  const L = native().layout.virtio_net_hdr;
  assert.deepEqual([L.flags, L.gso_type, L.hdr_len, L.gso_size, L.csum_start, L.csum_offset], [0, 1, 2, 4, 6, 8]);
});

for (const receiveOffload of [true, false]) {
  test(`TCP between two namespaces through two bridged TAPs, receive offload ${receiveOffload ? 'on: super-frames are cut here' : 'off'}; the bytes arrive intact`, { timeout: 120_000 }, async (t) => {
    if (!requireTap(t)) return;
    const nsA = await NetNs.create();
    const nsB = await NetNs.create();
    const a = TapBackend.open({ receiveOffload });
    const b = TapBackend.open({ receiveOffload });
    try {
      assert.equal(a.receiveOffload, receiveOffload);
      let pauses = 0;
      a.onReceive((f) => {
        b.send(f);
        // Now and then, pause A mid-batch for a moment, as a NIC with a full ring does.
        if (a.stats.rxFrames % 97 === 0 && pauses < 20) {
          pauses++;
          a.pauseReceive();
          setTimeout(() => a.resumeReceive(), 5);
        }
      });
      b.onReceive((f) => a.send(f));
      await nsA.adoptLink(a.name, '10.0.9.1/24');
      await nsB.adoptLink(b.name, '10.0.9.2/24');
      const receiver = nsB.spawn([process.execPath, '-e', BRIDGE_RECEIVER]);
      const received = outputOf(receiver);
      await new Promise<void>((resolve) => receiver.stdout!.once('data', () => resolve()));
      const bytes = 8 * 1024 * 1024;
      const sent = (await outputOf(nsA.spawn([process.execPath, '-e', BRIDGE_SENDER, '10.0.9.2', String(bytes)]))).trim();
      const [n, sum] = (await received).trim().split('\n').pop()!.split(' ');
      t.diagnostic(`A ${JSON.stringify(a.stats)} pauses ${pauses}`);
      assert.equal(Number(n), bytes);
      assert.equal(sum, sent);
      assert.ok(pauses > 0);
      if (receiveOffload) {
        assert.ok(a.stats.rxSegmented > 0, 'the sending stack handed over super-frames');
        assert.ok(a.stats.rxSegments > a.stats.rxSegmented);
      } else {
        assert.equal(a.stats.rxSegmented, 0);
      }
      assert.equal(a.stats.rxOffloadErrors, 0);
    } finally {
      a.close();
      b.close();
      await nsA.close();
      await nsB.close();
    }
  });
}

test('deleting the namespace holding the interface takes the carrier down', { timeout: 60_000 }, async (t) => {
  if (!requireTap(t)) return;
  const ns = await NetNs.create();
  const tap = TapBackend.open();
  try {
    await ns.adoptLink(tap.name, '10.0.3.2/24');
    const down = new Promise<boolean>((resolve) => tap.onLinkChange(resolve));
    await ns.close(); // the kernel unregisters the TAP: our fd reports an error
    const timeout = new Promise<string>((resolve) => setTimeout(() => resolve('timeout'), 20_000).unref());
    assert.equal(await Promise.race([down, timeout]), false);
    assert.equal(tap.linkUp, false);
    assert.equal(tap.stats.rxErrors, 1);
    tap.send(new Uint8Array(60));
    assert.equal(tap.stats.txDropped, 1);
  } finally {
    tap.close();
    await ns.close();
  }
});
