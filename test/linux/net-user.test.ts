// User-mode networking (passt) with real Linux guests, one on 8139cp and one on 8139too, booted
// side by side in one process with their own `user` backends: each takes its DHCP lease, fetches
// a file from an HTTP server this test runs on the host's loopback (through the gateway address),
// serves one back through a port forward, and close() leaves no passt behind. A second test
// boots with bootVm({ net: 'user' }) and adds forwards after boot (TCP and UDP), with UDP both
// ways through test/linux/tools/udp-echo.c (busybox's nc has no -u). passt dying (link down,
// the failure event) is in the unit tier (test/unit/net-user.test.ts).
//
// Sizes: 32 MiB each way where Linux runs on the host's KVM; 1 MiB inside the nested lab
// (NODE_KVM_USER_MIB overrides). There passt (Debian 12's 2023.03) moves 0.2-1.7 Mbit/s for
// our VMM and for QEMU on the same passt alike (`npm run bench -- net --backend=user`,
// docs/benchmarks.md 2026-12-07): a lost segment makes it resend everything after the
// duplicate ACK, again for each duplicate ACK the resends cause, so 32 MiB would take
// 15-20 minutes per direction per NIC.
//
// The forwards are tested before the downloads, not after: a download through passt 2023.03
// can end in such a storm of resends that the backend still holds megabytes of them for the
// NIC when the host connects, and passt resets a connection whose SYN the guest has not
// answered within 10 s (it sends the SYN once). Seen in the lab 5 times in 37 runs, always
// after a download (docs/benchmarks.md, 2026-12-07 evening); a known limit in the README.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { createServer, get, type Server } from 'node:http';
import { connect } from 'node:net';
import { createSocket } from 'node:dgram';
import { spawnSync } from 'node:child_process';
import { bootVm, type TestVm } from '../../lib/testing/index.js';
import { userNet, UserNetBackend } from '../../lib/net/user.js';
import { requireKvm } from '../helpers/kvm.js';
import { udpEchoTool } from './helpers.js';

const MIB = Number(process.env.NODE_KVM_USER_MIB ?? (process.env.NODE_KVM_LAB === '1' ? 1 : 32));
const TRANSFER_MS = 900_000;
const sha256 = (b: Uint8Array): string => createHash('sha256').update(b).digest('hex');
const passts = (): string[] => spawnSync('pgrep', ['-x', 'passt(\\.avx2)?'], { encoding: 'utf8' }).stdout.trim().split('\n').filter(Boolean);

function listen(server: Server): Promise<number> {
  return new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve((server.address() as { port: number }).port)));
}

function fetchAll(port: number, path: string): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    get({ host: '127.0.0.1', port, path }, (res) => {
      const parts: Buffer[] = [];
      res.on('data', (d: Buffer) => parts.push(d));
      res.on('end', () => (res.statusCode === 200 ? resolve(Buffer.concat(parts)) : reject(new Error(`HTTP ${res.statusCode}`))));
      res.on('error', reject);
    }).on('error', reject);
  });
}

/** What the NIC, the backend and the guest's TCP say, for a failed transfer. */
async function diagnose(vm: TestVm, backend: UserNetBackend): Promise<string> {
  const nic = vm.machine.platform.nics[0]!;
  const nicState = (): string => {
    const ring = nic.revision >= 0x20 ? nic.cplusRxRing() : undefined;
    return `ISR 0x${nic.interruptStatus.toString(16)} IMR 0x${nic.interruptMask.toString(16)} waiting ${nic.rxWaiting} link ${nic.linkUp}`
      + (ring !== undefined ? ` C+ RX ring next ${ring.index} ${ring.owners}` : '');
  };
  const exits0 = { ...vm.machine.counters };
  const lines = [`NIC: ${nicState()}`, `NIC counters: ${JSON.stringify(nic.stats)}`, `backend: ${JSON.stringify(backend.stats)}`];
  const guest = await vm.exec('netstat -tan; grep -A1 "^Tcp:" /proc/net/snmp; cat /proc/net/softnet_stat; grep -i eth /proc/interrupts; '
    + 'grep -E "NET_RX|NET_TX|TIMER" /proc/softirqs; head -1 /proc/stat; sleep 1; grep NET_RX /proc/softirqs; head -1 /proc/stat; top -bn1 | head -12; '
    + 'for f in rx_packets rx_dropped rx_errors rx_fifo_errors rx_missed_errors; do echo "$f $(cat /sys/class/net/eth0/statistics/$f)"; done', { timeout: 60_000 })
    .then((r) => r.stdout + r.stderr, (e: Error) => `guest: ${e.message}`);
  lines.push(`guest:\n${guest}`);
  await new Promise((r) => setTimeout(r, 3000));
  lines.push(`NIC 3 s later: ${nicState()}`, `exits then: ${JSON.stringify(exits0)}`, `exits now: ${JSON.stringify(vm.machine.counters)}`);
  return lines.join('\n');
}

test('user networking: DHCP, host loopback via the gateway, forwards, two VMs, close', { timeout: 3_000_000 }, async (t) => {
  if (!requireKvm(t)) return;
  const before = passts();
  const blob = randomBytes(MIB << 20);
  const http = createServer((req, res) => {
    if (req.url !== '/blob') { res.writeHead(404).end(); return; }
    res.writeHead(200, { 'content-length': blob.length }).end(blob);
  });
  const httpPort = await listen(http);
  t.after(() => http.close());

  const backends = [userNet({ forward: [{ guest: 8080 }] }), userNet({ forward: [{ guest: 8080 }] })];
  const vms: TestVm[] = [];
  t.after(async () => { for (const v of vms) await v.close(); for (const b of backends) { b.close(); await b.exited; } });
  const booted = await Promise.all(([0x20, 0x10] as const).map((revision, i) => bootVm({
    name: revision === 0x20 ? '8139cp' : '8139too', memory: '256M', cmdline: 'nkvm.ip=dhcp', timeout: 600_000,
    net: [{ backend: backends[i]!, revision }],
  })));
  vms.push(...booted);

  await t.test('each guest took its DHCP lease (10.0.2.15, gateway 10.0.2.2)', async () => {
    for (const vm of vms) {
      const r = await vm.execOk('ip -4 addr show eth0; ip route');
      assert.match(r.stdout, /inet 10\.0\.2\.15\/24/, `${vm.name}:\n${r.stdout}`);
      assert.match(r.stdout, /default via 10\.0\.2\.2/, `${vm.name}:\n${r.stdout}`);
    }
  });

  await t.test(`the host fetches ${MIB} MiB from each guest's httpd through its forward, sha256 intact`, async () => {
    for (const [i, vm] of vms.entries()) {
      const gen = await vm.execOk(`mkdir -p /srv && head -c ${MIB << 20} /dev/urandom > /srv/blob && sha256sum /srv/blob && httpd -p 8080 -h /srv`, { timeout: TRANSFER_MS });
      const port = backends[i]!.forwards[0]!.host;
      assert.equal(await vm.forward(8080), port, 'forward() reports the forward given at create');
      const t0 = performance.now();
      const got = await fetchAll(port, '/blob').catch(async (e: Error) => {
        throw new Error(`${vm.name}: ${e.message}\n${await diagnose(vm, backends[i]!)}`, { cause: e });
      });
      t.diagnostic(`${vm.name}: host←guest ${MIB} MiB in ${((performance.now() - t0) / 1000).toFixed(1)} s`);
      assert.equal(sha256(got), gen.stdout.split(/\s+/)[0], vm.name);
    }
    assert.notEqual(backends[0]!.forwards[0]!.host, backends[1]!.forwards[0]!.host, 'two machines, two host ports');
  });

  await t.test(`each guest downloads ${MIB} MiB from a server on the host's loopback, sha256 intact`, async () => {
    for (const vm of vms) {
      const t0 = performance.now();
      const r = await vm.exec(`wget -q -O /tmp/blob http://10.0.2.2:${httpPort}/blob; echo "wget=$?"; wc -c < /tmp/blob; sha256sum /tmp/blob; rm -f /tmp/blob`, { timeout: TRANSFER_MS });
      t.diagnostic(`${vm.name}: guest←host ${MIB} MiB in ${((performance.now() - t0) / 1000).toFixed(1)} s`);
      const [status, size, sum] = r.stdout.trim().split('\n');
      assert.deepEqual([status, Number(size), sum?.split(/\s+/)[0]], ['wget=0', blob.length, sha256(blob)], `${vm.name}:\n${r.stdout}${r.stderr}`);
    }
  });

  await t.test('close() leaves no passt running', async () => {
    for (const v of vms) await v.close();
    for (const b of backends) { b.close(); await b.exited; }
    assert.deepEqual(passts(), before);
    assert.ok(backends.every((b) => b instanceof UserNetBackend));
  });
});

test("bootVm({ net: 'user' }): DHCP, the host's loopback, forward() after boot (TCP, UDP), UDP both ways, no passt left", { timeout: 1_200_000 }, async (t) => {
  if (!requireKvm(t)) return;
  const before = passts();
  const http = createServer((_req, res) => { res.writeHead(200).end('hello-from-host\n'); });
  const port = await listen(http);
  t.after(() => http.close());
  // The host's UDP echo server, reached from the guest through the gateway address.
  const echo = createSocket('udp4');
  const heard: string[] = [];
  echo.on('message', (m, from) => { heard.push(m.toString()); echo.send(m, from.port, from.address); });
  await new Promise<void>((r) => echo.bind(0, '127.0.0.1', () => r()));
  t.after(() => echo.close());
  const vm = await bootVm({ net: 'user', timeout: 600_000 });
  try {
    await vm.writeFile('/bin/udp-echo', udpEchoTool(), { mode: 0o755 });
    assert.match((await vm.execOk('ip -4 addr show eth0')).stdout, /inet 10\.0\.2\.15\/24/);
    assert.equal((await vm.execOk(`wget -q -O - http://10.0.2.2:${port}/`)).stdout.trim(), 'hello-from-host');

    // forward() after boot restarts passt; the guest is idle on the network from here on (exec
    // goes over the console), so only the backend's announcement tells the new passt its MAC.
    await vm.execOk('nc -l -p 9000 -e cat </dev/null >/dev/null 2>&1 &');
    const fwd = await vm.forward(9000);
    const line = `through a forward added after boot ${randomBytes(8).toString('hex')}\n`;
    const back = await new Promise<string>((resolve, reject) => {
      const c = connect(fwd, '127.0.0.1');
      let got = '';
      const timer = setTimeout(() => { c.destroy(); reject(new Error(`no echo through the forward after 60 s (got ${JSON.stringify(got)})`)); }, 60_000);
      c.setEncoding('utf8');
      c.on('data', (d: string) => { got += d; if (got.length >= line.length) { clearTimeout(timer); c.end(); resolve(got); } });
      c.on('error', (e) => { clearTimeout(timer); reject(e); });
      c.write(line);
    });
    assert.equal(back, line);

    // UDP guest → host: the guest asks, the host's echo server answers.
    const ask = await vm.execOk(`udp-echo ask 10.0.2.2 ${(echo.address()).port} guest-to-host-udp`, { timeout: 60_000 });
    assert.equal(ask.stdout.trim(), 'guest-to-host-udp');
    assert.ok(heard.includes('guest-to-host-udp'));

    // UDP host → guest: a UDP forward added after boot to the guest's echo server.
    await vm.execOk('udp-echo serve 7007 1 >/tmp/udp.log 2>&1 </dev/null & while ! grep -q listening /tmp/udp.log; do sleep 0.1; done');
    const udpFwd = await vm.forward(7007, { proto: 'udp' });
    const client = createSocket('udp4');
    t.after(() => client.close());
    const reply = new Promise<string>((r) => client.once('message', (m) => r(m.toString())));
    // UDP may be lost: send until the answer comes (the guest's server answers once and exits).
    let replied = false;
    for (let i = 0; i < 20 && !replied; i++) {
      client.send('host-to-guest-udp', udpFwd, '127.0.0.1');
      replied = await Promise.race([reply.then(() => true), new Promise<boolean>((r) => setTimeout(() => r(false), 3000))]);
    }
    assert.equal(await reply, 'host-to-guest-udp');
    assert.equal((await vm.execOk('cat /tmp/udp.log')).stdout.trim(), 'listening');
  } finally {
    await vm.close();
  }
  assert.deepEqual(passts(), before);
});
