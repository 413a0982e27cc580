// fw_cfg as a guest reads it (test/guests/plat-fwcfg.S, 32-bit flat): the "QEMU" signature,
// the ID item, the CPU count for 1 and 2 vCPUs (with 2 the AP just waits for a SIPI), the file
// directory listing "etc/e820" and that file's contents, which must be the machine's e820 map.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { requireKvm } from '../helpers/kvm.js';
import { buildGuestFile } from '../guests/build.js';
import { Machine } from '../../lib/machine/index.js';

const E820_ENTRY = 20;

for (const cpus of [1, 2]) {
  test(`guest reads fw_cfg: signature, ID, ${cpus} CPU(s), file directory and etc/e820`, async (t) => {
    if (!requireKvm(t)) return;
    const kernel = new Uint8Array(readFileSync(buildGuestFile('plat-fwcfg.S', { linkAddress: 0x10000, format: 'flat' })));
    await using m = await Machine.create({ kernel, memory: '128M', cpus, flat: { mode: 'protected' } });
    m.start();
    await m.console.waitFor('fw_cfg done\n', { timeout: 30_000 });
    const result = await m.wait();
    const out = m.console.output;

    assert.match(out, /^sig=QEMU$/m);
    assert.equal(parseInt(/^id=([0-9a-f]{8})$/m.exec(out)![1]!, 16) & 1, 1, 'traditional interface bit in the ID item');
    assert.equal(parseInt(/^cpus=([0-9a-f]{8})$/m.exec(out)![1]!, 16), cpus);

    const count = parseInt(/^files=([0-9a-f]{8})$/m.exec(out)![1]!, 16);
    const files = [...out.matchAll(/^file size=([0-9a-f]{8}) select=([0-9a-f]{8}) name=(.*)$/gm)]
      .map((x) => ({ size: parseInt(x[1]!, 16), select: parseInt(x[2]!, 16), name: x[3]! }));
    assert.equal(files.length, count, 'one line per directory entry');
    const e820File = files.find((f) => f.name === 'etc/e820');
    assert.ok(e820File !== undefined, `etc/e820 listed in ${JSON.stringify(files)}`);
    assert.equal(e820File.size, m.boot.e820.length * E820_ENTRY, 'etc/e820 size = entries * 20');
    assert.ok(e820File.select >= 0x20, 'file keys start at FW_CFG_FILE_FIRST');

    const summary = /^e820 size=([0-9a-f]{8}) count=([0-9a-f]{8}) rest=([0-9a-f]{8})$/m.exec(out)!;
    assert.equal(parseInt(summary[2]!, 16), m.boot.e820.length);
    assert.equal(parseInt(summary[3]!, 16), 0);
    const entries = [...out.matchAll(/^e820 addr=([0-9a-f]{16}) len=([0-9a-f]{16}) type=([0-9a-f]{8})$/gm)]
      .map((x) => ({ addr: Number(BigInt('0x' + x[1]!)), size: Number(BigInt('0x' + x[2]!)), type: parseInt(x[3]!, 16) }));
    assert.deepEqual(entries, m.boot.e820.map((e) => ({ addr: e.addr, size: e.size, type: e.type })));
    const ramTotal = entries.filter((e) => e.type === 1).reduce((a, e) => a + e.size, 0);
    assert.ok(ramTotal <= 128 << 20 && ramTotal > 126 << 20, `usable RAM in the map (${ramTotal}) is about the 128M given`);

    assert.equal(result.reason, 'debug-exit');
    assert.equal(result.code, 1, 'guest-side checks passed (value 0)');
  });
}
