// Boot the default guest and run commands in it.
//   npx tsc -p tsconfig.json && node dist/examples/boot-and-exec.js
// (on a host whose KVM cannot boot Linux: node bin/node-kvm.js lab -- node dist/examples/boot-and-exec.js)
import assert from 'node:assert/strict';
import { bootVm } from '../lib/testing/index.js';

await using vm = await bootVm({ memory: '128M' });
const r = await vm.exec('uname -sr; echo to-stderr >&2; exit 3');
console.log(`stdout: ${r.stdout.trim()} | stderr: ${r.stderr.trim()} | exit ${r.exitCode}`);
assert.match(r.stdout, /^Linux /);
assert.equal(r.stderr, 'to-stderr\n');
assert.equal(r.exitCode, 3);
await vm.writeFile('/tmp/hello.txt', 'hello from the host\n');
assert.equal((await vm.execOk('cat /tmp/hello.txt')).stdout, 'hello from the host\n');
console.log('boot-and-exec: ok');
