// User-mode networking (passt) with real Linux guests, one on 8139cp and one on 8139too, booted
// side by side in one process with their own `user` backends: each takes its DHCP lease, fetches
// a file from an HTTP server this test runs on the host's loopback (through the gateway address),
// serves one back through a port forward, and close() leaves no passt behind. UDP both ways,
// forward() after start and passt dying (link down, the failure event) are in the unit tier
// (test/unit/net-user.test.ts): busybox's nc has no -u.
//
// Sizes: 32 MiB each way where Linux runs on the host's KVM; inside the nested lab the two guests
// share one emulated CPU and passt's retransmission timer fires long before the guest's ACKs
// come back, so 1 MiB there (NODE_KVM_USER_MIB overrides).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { createServer, get, type Server } from 'node:http';
import { spawnSync } from 'node:child_process';
import { bootVm, type TestVm } from '../../lib/testing/index.js';
import { userNet, UserNetBackend } from '../../lib/net/user.js';
import { requireKvm } from '../helpers/kvm.js';

const MIB = Number(process.env.NODE_KVM_USER_MIB ?? (process.env.NODE_KVM_LAB === '1' ? 1 : 32));
const TRANSFER_MS = 900_000;
const sha256 = (b: Uint8Array): string => createHash('sha256').update(b).digest('hex');
const passts = (): string[] => spawnSync('pgrep', ['-x', 'passt'], { encoding: 'utf8' }).stdout.trim().split('\n').filter(Boolean);

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

  await t.test(`each guest downloads ${MIB} MiB from a server on the host's loopback, sha256 intact`, async () => {
    for (const vm of vms) {
      const t0 = performance.now();
      const r = await vm.exec(`wget -q -O /tmp/blob http://10.0.2.2:${httpPort}/blob; echo "wget=$?"; wc -c < /tmp/blob; sha256sum /tmp/blob; rm -f /tmp/blob`, { timeout: TRANSFER_MS });
      t.diagnostic(`${vm.name}: guest←host ${MIB} MiB in ${((performance.now() - t0) / 1000).toFixed(1)} s`);
      const [status, size, sum] = r.stdout.trim().split('\n');
      assert.deepEqual([status, Number(size), sum?.split(/\s+/)[0]], ['wget=0', blob.length, sha256(blob)], `${vm.name}:\n${r.stdout}${r.stderr}`);
    }
  });

  await t.test(`the host fetches ${MIB} MiB from each guest's httpd through its forward, sha256 intact`, async () => {
    for (const [i, vm] of vms.entries()) {
      const gen = await vm.execOk(`mkdir -p /srv && head -c ${MIB << 20} /dev/urandom > /srv/blob && sha256sum /srv/blob && httpd -p 8080 -h /srv`, { timeout: TRANSFER_MS });
      const port = backends[i]!.forwards[0]!.host;
      assert.equal(await vm.forward(8080), port, 'forward() reports the forward given at create');
      const t0 = performance.now();
      const got = await fetchAll(port, '/blob');
      t.diagnostic(`${vm.name}: host←guest ${MIB} MiB in ${((performance.now() - t0) / 1000).toFixed(1)} s`);
      assert.equal(sha256(got), gen.stdout.split(/\s+/)[0], vm.name);
    }
    assert.notEqual(backends[0]!.forwards[0]!.host, backends[1]!.forwards[0]!.host, 'two machines, two host ports');
  });

  await t.test('close() leaves no passt running', async () => {
    for (const v of vms) await v.close();
    for (const b of backends) { b.close(); await b.exited; }
    assert.deepEqual(passts(), before);
    assert.ok(backends.every((b) => b instanceof UserNetBackend));
  });
});

test("bootVm({ net: 'user' }): a DHCP lease by default, the host's loopback reachable, no passt left after close", { timeout: 1_200_000 }, async (t) => {
  if (!requireKvm(t)) return;
  const before = passts();
  const http = createServer((_req, res) => { res.writeHead(200).end('hello-from-host\n'); });
  const port = await listen(http);
  t.after(() => http.close());
  const vm = await bootVm({ net: 'user', timeout: 600_000 });
  try {
    assert.match((await vm.execOk('ip -4 addr show eth0')).stdout, /inet 10\.0\.2\.15\/24/);
    assert.equal((await vm.execOk(`wget -q -O - http://10.0.2.2:${port}/`)).stdout.trim(), 'hello-from-host');
  } finally {
    await vm.close();
  }
  assert.deepEqual(passts(), before);
});
