// Two VMs on one link under node:test: a server listens with busybox nc, a client sends a line.
//   node --test dist/examples/client-server.test.js
import assert from 'node:assert/strict';
import { vmTest } from '../lib/testing/index.js';

vmTest('client reaches the server over the virtual link', async (scope) => {
  const net = await scope.topology({
    vms: { server: { memory: '128M' }, client: { memory: '128M' } },
    links: [{ between: ['server', 'client'] }],
  });
  const server = net.vm('server');
  const client = net.vm('client');
  // nc -l answers one connection; run it in the background and collect what it received.
  await server.execOk('(nc -l -p 7000 > /tmp/got) >/dev/null 2>&1 & echo started');
  await client.execOk(`ping -c 1 -W 5 ${net.ip('server')}`, { timeout: 30_000 });
  await client.execOk(`echo hello-from-client | nc -w 5 ${net.ip('server')} 7000`, { timeout: 30_000 });
  const got = await server.execOk('for i in 1 2 3 4 5 6 7 8 9 10; do [ -s /tmp/got ] && break; sleep 1; done; cat /tmp/got');
  assert.equal(got.stdout, 'hello-from-client\n');
});
