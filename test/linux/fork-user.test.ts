// Forks on user networks: a template with `net: 'user'` and two forks at once. Each fork gets a
// fresh passt of its own and, with its own MAC, takes a DHCP lease after the restore; each
// fetches a page from an HTTP server on the host's loopback (through the gateway) that names
// the fork, and closing the forks leaves no passt behind.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:http';
import { spawnSync } from 'node:child_process';
import { vmTemplate } from '../../lib/testing/template.js';
import { UserNetBackend } from '../../lib/net/user.js';
import { requireKvm } from '../helpers/kvm.js';
import { defaultImage } from './helpers.js';

// Debian's passt re-executes itself as passt.avx2 where the CPU has AVX2.
const passts = (): string[] => spawnSync('pgrep', ['-x', 'passt(\\.avx2)?'], { encoding: 'utf8' }).stdout.trim().split('\n').filter(Boolean);

function listen(server: Server): Promise<number> {
  return new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve((server.address() as { port: number }).port)));
}

test('two forks of a user-network template: own passt, own MAC, a DHCP lease each, the host reachable', { timeout: 1_800_000 }, async (t) => {
  if (!requireKvm(t)) return;
  await defaultImage();
  const before = passts();
  const http = createServer((req, res) => res.end(`hello ${req.url?.slice(1) ?? ''}`));
  const port = await listen(http);
  t.after(() => http.close());

  await using tpl = await vmTemplate({ name: 'usertpl', memory: '256M', net: 'user' });
  assert.deepEqual(tpl.nics, ['user']);
  const forks = await Promise.all([0, 1].map((i) => tpl.fork({ name: `u${i}`, t, timeout: 300_000 })));
  const backends = forks.map((vm) => vm.machine.options.net[0]!.backend);
  assert.ok(backends.every((b) => b instanceof UserNetBackend) && backends[0] !== backends[1], 'each fork has a user network of its own');
  assert.equal(passts().length - before.length, 2, 'one passt per fork (the template\'s is gone)');

  const macs = await Promise.all(forks.map(async (vm) => (await vm.execOk('cat /sys/class/net/eth0/address')).stdout.trim()));
  assert.notEqual(macs[0], macs[1]);
  for (const [i, vm] of forks.entries()) {
    assert.match((await vm.execOk('ip -4 addr show dev eth0')).stdout, /inet 10\.0\.2\.15\//, `fork ${i} has no lease`);
    const r = await vm.execOk(`wget -q -O - http://10.0.2.2:${port}/fork${i}`, { timeout: 120_000 });
    assert.equal(r.stdout, `hello fork${i}`);
  }
  await Promise.all(forks.map((vm) => vm.close()));
  assert.deepEqual(passts().sort(), before.sort(), 'closing the forks ended their passt');
});
