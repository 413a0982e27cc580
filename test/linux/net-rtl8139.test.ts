// The RTL8139 model under Linux's own drivers, once per revision (0x10 → 8139too, 0x20 →
// 8139cp), with the host end of a TAP inside a network namespace (10.0.2.2/24) and the guest at
// 10.0.2.15/24. One boot per driver checks, in order: the bound driver, the EEPROM MAC,
// carrier, ping to the namespace, carrier loss and recovery, a pcap of the run so far that
// tshark reads and that holds the ICMP echoes, then a 32 MiB file both ways over TCP with
// matching sha256 (NODE_KVM_NET_MIB overrides the size).
//
// The file moves over HTTP: busybox httpd in the guest serves it with sendfile(), and busybox
// wget fetches it back. busybox nc copies 1 KiB per read/write, so its TCP sends ~1 KiB
// segments: in the nested lab (every L2 instruction emulated by TCG) 8139cp moved 2 Mbit/s
// guest→host with it, and 4.6-6.9 Mbit/s over HTTP. The capture is closed before the transfer:
// tshark would take about a minute per driver in the lab to dissect the transfer's ~70,000
// frames.
import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { getDefaultImage, GUEST_PROMPT, READY_MARKER, type Image } from '../../lib/images/index.js';
import { DEFAULT_CMDLINE } from '../../lib/machine/cmdline.js';
import { Machine } from '../../lib/machine/index.js';
import { findCommand, NetNs, netnsUnavailableReason } from '../../lib/net/netns.js';
import { PcapWriter } from '../../lib/net/pcap.js';
import { TapBackend } from '../../lib/net/tap.js';
import { inCI, requireKvm } from '../helpers/kvm.js';
import { shell as consoleShell, type ShellResult } from './helpers.js';

const inLab = process.env.NODE_KVM_LAB === '1';
const FILE_MIB = Number(process.env.NODE_KVM_NET_MIB ?? 32);
const BOOT_TIMEOUT_MS = 180_000;
const COMMAND_TIMEOUT_MS = 90_000;
/** A transfer may take this long: the lab took 80-143 s for 32 MiB guest→host with 8139too (1.9-3.4 Mbit/s). */
const TRANSFER_TIMEOUT_MS = Math.max(240_000, FILE_MIB * 15_000);

const HOST_IP = '10.0.2.2';
const GUEST_IP = '10.0.2.15';

/**
 * The HTTP peer inside the namespace. A line `fetch URL` on stdin makes it GET the URL (the
 * guest's httpd) and report the length and sha256 it received; :5002 serves those bytes back.
 */
const SERVER_JS = `
const http = require('http'), crypto = require('crypto');
let last = Buffer.alloc(0);
const say = (o) => process.stdout.write(JSON.stringify(o) + '\\n');
const fail = (e) => say({ kind: 'error', message: String(e) });
require('readline').createInterface({ input: process.stdin }).on('line', (line) => {
  const [verb, url] = line.trim().split(' ');
  if (verb !== 'fetch') return;
  http.get(url, (res) => {
    if (res.statusCode !== 200) { res.resume(); return fail('GET ' + url + ': HTTP ' + res.statusCode); }
    const h = crypto.createHash('sha256'), parts = [];
    res.on('data', (d) => { h.update(d); parts.push(d); });
    res.on('end', () => { last = Buffer.concat(parts); say({ kind: 'received', bytes: last.length, sha256: h.digest('hex') }); });
    res.on('error', fail);
  }).on('error', fail);
});
http.createServer((req, res) => {
  res.writeHead(200, { 'content-length': last.length });
  res.end(last, () => say({ kind: 'sent', bytes: last.length }));
}).listen(5002, '${HOST_IP}', () => say({ kind: 'listening' }));
`;

interface ServerEvent {
  kind: 'listening' | 'received' | 'sent' | 'error';
  bytes?: number;
  sha256?: string;
  message?: string;
}

/** Lines of JSON from the namespace server, awaited by kind. */
class ServerLog {
  private readonly events: ServerEvent[] = [];
  private readonly waiters: Array<() => void> = [];
  private buffered = '';
  constructor(stream: NodeJS.ReadableStream) {
    stream.on('data', (d: Buffer) => {
      this.buffered += d.toString('utf8');
      let nl: number;
      while ((nl = this.buffered.indexOf('\n')) >= 0) {
        const line = this.buffered.slice(0, nl);
        this.buffered = this.buffered.slice(nl + 1);
        if (line.trim() !== '') this.events.push(JSON.parse(line) as ServerEvent);
      }
      for (const w of this.waiters.splice(0)) w();
    });
  }

  async next(kind: ServerEvent['kind'], timeoutMs: number): Promise<ServerEvent> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const i = this.events.findIndex((e) => e.kind === kind || e.kind === 'error');
      if (i >= 0) {
        const [e] = this.events.splice(i, 1);
        if (e!.kind === 'error') throw new Error(`namespace server: ${e!.message}`);
        return e!;
      }
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`namespace server: no '${kind}' within ${timeoutMs} ms`);
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, left);
        this.waiters.push(() => { clearTimeout(t); resolve(); });
      });
    }
  }
}

/** The shared console shell (helpers.ts) with this file's longer default timeout. */
function shell(m: Machine, command: string, timeout = COMMAND_TIMEOUT_MS): Promise<ShellResult> {
  return consoleShell(m, command, timeout);
}

/** Poll a sysfs value in the guest until it reads `want` (the driver notices link changes asynchronously). */
function waitSysfs(m: Machine, path: string, want: string, seconds: number): Promise<ShellResult> {
  return shell(m, `i=0; while [ "$(cat ${path})" != ${want} ] && [ $i -lt ${seconds * 5} ]; do sleep 0.2; i=$((i+1)); done; cat ${path}`);
}

function netSkipReason(): string | undefined {
  const why = netnsUnavailableReason();
  if (why !== undefined) return why;
  if (findCommand('tshark') === undefined) return 'tshark is not installed (apt-get install tshark)';
  return undefined;
}

function requireNet(t: TestContext): boolean {
  if (!requireKvm(t)) return false;
  const why = netSkipReason();
  if (why === undefined) return true;
  if (inCI) throw new Error(`CI requires network namespaces and tshark: ${why}`);
  t.skip(why);
  return false;
}

function image(): Promise<Image> {
  return getDefaultImage({ build: true, verify: inLab ? 'size' : 'full' });
}

const DRIVERS = [
  { revision: 0x10, driver: '8139too', mac: '52:54:00:8a:10:01' },
  { revision: 0x20, driver: '8139cp', mac: '52:54:00:8a:20:01' },
] as const;

for (const d of DRIVERS) {
  test(`RTL8139 revision 0x${d.revision.toString(16)} under Linux ${d.driver}: MAC, carrier, ping, ${FILE_MIB} MiB both ways, link down/up, pcap`, async (t) => {
    if (!requireNet(t)) return;
    const img = await image();
    const dir = mkdtempSync(join(tmpdir(), 'node-kvm-net-'));
    t.after(() => rmSync(dir, { recursive: true, force: true }));
    const pcapPath = join(dir, 'run.pcap');

    await using ns = await NetNs.create();
    const tap = TapBackend.open();
    const pcap = new PcapWriter(pcapPath);
    const backend = pcap.wrap(tap); // closes the TAP with it
    t.after(() => { backend.close(); pcap.close(); });
    await ns.adoptLink(tap.name, `${HOST_IP}/24`);
    const server = ns.spawn([process.execPath, '-e', SERVER_JS]);
    const log = new ServerLog(server.stdout!);
    let serverErr = '';
    server.stderr!.on('data', (b: Buffer) => { serverErr += b.toString(); });
    await log.next('listening', 30_000).catch((e: Error) => { throw new Error(`${e.message}\n${serverErr}`); });

    await using m = await Machine.create({
      kernel: img.vmlinux, initrd: img.initrd, memory: '256M', cpus: 1,
      cmdline: `${DEFAULT_CMDLINE} quiet nkvm.ip=${GUEST_IP}/24`,
      net: [{ backend, mac: d.mac, revision: d.revision }],
    });
    const nic = m.platform.nics[0]!;
    m.start();
    await m.console.waitFor(READY_MARKER, { timeout: BOOT_TIMEOUT_MS });
    await m.console.waitFor(GUEST_PROMPT, { timeout: COMMAND_TIMEOUT_MS });

    await t.test(`eth0 is bound to ${d.driver}, has the EEPROM MAC and carrier`, async () => {
      const r = await shell(m, 'basename $(readlink /sys/class/net/eth0/device/driver); cat /sys/class/net/eth0/address /sys/class/net/eth0/carrier');
      assert.equal(r.status, 0, r.output);
      assert.deepEqual(r.output.trim().split('\n'), [d.driver, d.mac, '1']);
    });

    await t.test(`the guest pings ${HOST_IP} in the namespace`, async () => {
      const r = await shell(m, `ping -c 3 -W 10 ${HOST_IP}`);
      assert.equal(r.status, 0, r.output);
      assert.match(r.output, /3 packets transmitted, 3 packets received/);
    });

    await t.test('carrier loss is seen by the guest and traffic resumes when the link comes back', async () => {
      nic.setLink(false);
      const down = await waitSysfs(m, '/sys/class/net/eth0/carrier', '0', 30);
      assert.equal(down.output.trim(), '0', 'carrier after setLink(false)');
      const lost = await shell(m, `ping -c 1 -W 2 ${HOST_IP}`);
      assert.notEqual(lost.status, 0, `ping succeeded with the link down:\n${lost.output}`);
      nic.setLink(true);
      const up = await waitSysfs(m, '/sys/class/net/eth0/carrier', '1', 30);
      assert.equal(up.output.trim(), '1', 'carrier after setLink(true)');
      const r = await shell(m, `ping -c 3 -W 10 ${HOST_IP}`);
      assert.equal(r.status, 0, r.output);
      assert.match(r.output, / [1-3] packets received/);
    });

    await t.test('the pcap of the run so far reads with tshark and holds the ICMP echo request and reply', async () => {
      pcap.close(); // frames still pass through the wrapper, unrecorded
      const fields = execFileSync('tshark', ['-r', pcapPath, '-Y', 'icmp', '-T', 'fields', '-e', 'icmp.type', '-e', 'ip.src', '-e', 'ip.dst'],
        { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'], timeout: 120_000 });
      const rows = fields.trim().split('\n').map((l) => l.split('\t'));
      assert.ok(rows.some(([type, src, dst]) => type === '8' && src === GUEST_IP && dst === HOST_IP), `no echo request in\n${fields}`);
      assert.ok(rows.some(([type, src, dst]) => type === '0' && src === HOST_IP && dst === GUEST_IP), `no echo reply in\n${fields}`);
    });

    await t.test(`${FILE_MIB} MiB from /dev/urandom crosses guest→host and host→guest over TCP with the same sha256`, async () => {
      const bytes = FILE_MIB * 1024 * 1024;
      // The file under httpd's root; httpd forks into the background and serves until poweroff.
      const gen = await shell(m, `mkdir -p /tmp/www && head -c ${bytes} /dev/urandom > /tmp/www/f && sha256sum /tmp/www/f && httpd -p 8080 -h /tmp/www`, TRANSFER_TIMEOUT_MS);
      assert.equal(gen.status, 0, gen.output);
      const sum = gen.output.trim().split(/\s+/)[0]!;
      assert.match(sum, /^[0-9a-f]{64}$/);

      const t0 = performance.now();
      server.stdin!.write(`fetch http://${GUEST_IP}:8080/f\n`);
      const received = await log.next('received', TRANSFER_TIMEOUT_MS);
      const upS = (performance.now() - t0) / 1000;
      assert.equal(received.bytes, bytes);
      assert.equal(received.sha256, sum);

      const t1 = performance.now();
      // pipefail is not in busybox ash: wget's status comes through a file.
      const down = await shell(m, `{ wget -q -O - http://${HOST_IP}:5002/f; echo $? > /tmp/wget.rc; } | sha256sum; cat /tmp/wget.rc`, TRANSFER_TIMEOUT_MS);
      const downS = (performance.now() - t1) / 1000;
      assert.equal(down.status, 0, down.output);
      const [gotSum, , wgetRc] = down.output.trim().split(/\s+/);
      assert.equal(wgetRc, '0', `wget failed:\n${down.output}`);
      assert.equal(gotSum, sum);
      const sent = await log.next('sent', COMMAND_TIMEOUT_MS);
      assert.equal(sent.bytes, bytes);
      t.diagnostic(`${FILE_MIB} MiB guest→host ${upS.toFixed(1)} s (${(bytes * 8 / upS / 1e6).toFixed(2)} Mbit/s), ` +
        `host→guest ${downS.toFixed(1)} s (${(bytes * 8 / downS / 1e6).toFixed(2)} Mbit/s)${inLab ? ', nested lab' : ''}; ` +
        `NIC tx ${nic.stats.txFrames} rx ${nic.stats.rxFrames} frames, rx held back ${nic.stats.rxQueued}, missed ${nic.stats.rxMissed}, ` +
        `backend paused ${nic.stats.rxPauses} times; TAP took ${tap.stats.txSegmented} TSO frames whole (${tap.stats.txSegments} segments), ` +
        `gave ${tap.stats.rxSegmented} super-frames (${tap.stats.rxSegments} segments)`);
      // The host's TCP hands the TAP super-frames (receive offload); the guest got them cut, with
      // the sha256 above intact (8139too checks every checksum itself).
      assert.ok(tap.stats.rxSegmented > 0, 'the host stack sent super-frames through the TAP');
      assert.equal(tap.stats.rxOffloadErrors, 0);
      // 8139cp's TSO frames reach the host stack whole, through the capture (how many depends on
      // how the guest's TCP sizes its frames: few at the lab's rates); 8139too has no TSO.
      if (d.revision === 0x10) assert.equal(tap.stats.txSegmented, 0);
      // The driver's own account of the transfer: no TX errors, no collisions (8139cp adds the
      // completed descriptor's TxColCnt, so a chip echoing the MSS there would show some), and
      // RX errors only for frames the NIC really dropped (8139too counts RxOverflow; a frame
      // held back while the ring is full must not count).
      const st = await shell(m, 'cd /sys/class/net/eth0/statistics && cat tx_errors collisions tx_fifo_errors rx_crc_errors rx_errors');
      assert.equal(st.status, 0, st.output);
      const [txErrors, collisions, txFifo, rxCrc, rxErrors] = st.output.trim().split(/\s+/).map(Number);
      assert.deepEqual([txErrors, collisions, txFifo, rxCrc], [0, 0, 0, 0], `tx_errors collisions tx_fifo_errors rx_crc_errors: ${st.output.trim()}`);
      assert.ok(rxErrors! <= nic.stats.rxMissed, `rx_errors ${rxErrors} > frames the NIC dropped (${nic.stats.rxMissed})`);
    });

    m.console.write('poweroff\n');
    const end = await Promise.race([m.wait(), new Promise<undefined>((r) => setTimeout(() => r(undefined), COMMAND_TIMEOUT_MS).unref())]);
    assert.equal(end?.reason, 'poweroff', `guest did not power off:\n${m.console.tail()}`);
  });
}
