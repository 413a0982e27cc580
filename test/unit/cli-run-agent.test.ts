// `node-kvm run`'s nkvm.run= over the agent: taking the command out of the kernel command line
// by the same rules as the guest's /init.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { AGENT_RUN, takeRunCommand } from '../../lib/cli/run-agent.js';

test('nkvm.run="…", nkvm.run=WORD and nkvm.run64= become nkvm.run=@agent', () => {
  assert.deepEqual(takeRunCommand('console=ttyS0 nkvm.run="uname -a; exit 3" quiet'),
    { command: 'uname -a; exit 3', cmdline: `console=ttyS0 nkvm.run=${AGENT_RUN} quiet` });
  assert.deepEqual(takeRunCommand('nkvm.run=uptime'), { command: 'uptime', cmdline: `nkvm.run=${AGENT_RUN}` });
  const b64 = Buffer.from('echo "a b" | tr a A').toString('base64');
  assert.deepEqual(takeRunCommand(`quiet nkvm.run64=${b64}`), { command: 'echo "a b" | tr a A', cmdline: `quiet nkvm.run=${AGENT_RUN}` });
  assert.equal(takeRunCommand('console=ttyS0 quiet'), undefined);
  assert.equal(takeRunCommand('xnkvm.run=foo'), undefined, 'only a whole parameter');
  assert.equal(takeRunCommand('nkvm.run=""'), undefined);
  assert.equal(takeRunCommand(`nkvm.run=${AGENT_RUN}`), undefined);
});
