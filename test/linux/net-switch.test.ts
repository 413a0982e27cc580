// Two Linux guests in one process on the in-process L2Switch (no TAP, no root): guest A
// (8139cp, 10.0.3.1) behind a LinkShaper, guest B (8139too, 10.0.3.2) on a plain port. They
// ping each other and move a file over HTTP (busybox httpd on A, wget on B) with matching
// sha256, first over a clean link, then with 5% loss and 10 ms delay each way on A's link.
//
// Sizes: 32 MiB clean / 8 MiB shaped where Linux runs on the host's KVM directly; inside the
// nested lab both guests share one emulated CPU, so 2 MiB / 1 MiB there
// (NODE_KVM_SWITCH_MIB=clean,shaped overrides).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { getDefaultImage, GUEST_PROMPT, READY_MARKER } from '../../lib/images/index.js';
import { DEFAULT_CMDLINE } from '../../lib/machine/cmdline.js';
import { Machine } from '../../lib/machine/index.js';
import { LinkShaper } from '../../lib/net/link.js';
import { L2Switch } from '../../lib/net/switch.js';
import { requireKvm } from '../helpers/kvm.js';
import { shell as consoleShell, type ShellResult } from './helpers.js';

const inLab = process.env.NODE_KVM_LAB === '1';
const [CLEAN_MIB, SHAPED_MIB] = (process.env.NODE_KVM_SWITCH_MIB ?? (inLab ? '2,1' : '32,8')).split(',').map(Number) as [number, number];
const BOOT_TIMEOUT_MS = 240_000;
const COMMAND_TIMEOUT_MS = 120_000;
const TRANSFER_TIMEOUT_MS = 600_000;

const A_IP = '10.0.3.1';
const B_IP = '10.0.3.2';

/** The shared console shell (helpers.ts) with this file's longer default timeout. */
function shell(m: Machine, command: string, timeout = COMMAND_TIMEOUT_MS): Promise<ShellResult> {
  return consoleShell(m, command, timeout);
}

async function bootToPrompt(m: Machine): Promise<void> {
  m.start();
  await m.console.waitFor(READY_MARKER, { timeout: BOOT_TIMEOUT_MS });
  await m.console.waitFor(GUEST_PROMPT, { timeout: COMMAND_TIMEOUT_MS });
}

/** A writes MiB random bytes to /tmp/NAME (served by its httpd); B fetches it. Returns both sums and the seconds taken. */
async function moveFile(a: Machine, b: Machine, name: string, mib: number): Promise<{ sent: string; got: string; seconds: number }> {
  const gen = await shell(a, `head -c ${mib * 1024 * 1024} /dev/urandom > /tmp/${name} && sha256sum /tmp/${name}`, TRANSFER_TIMEOUT_MS);
  assert.equal(gen.status, 0, gen.output);
  const t0 = performance.now();
  // pipefail is not in busybox ash: check wget's status through a file.
  const got = await shell(b, `{ wget -q -O - http://${A_IP}:8080/${name}; echo $? > /tmp/wget.rc; } | sha256sum; cat /tmp/wget.rc`, TRANSFER_TIMEOUT_MS);
  const seconds = (performance.now() - t0) / 1000;
  const [sumLine, rc] = got.output.trim().split('\n');
  assert.equal(rc, '0', `wget failed:\n${got.output}`);
  return { sent: gen.output.trim().split(/\s+/)[0]!, got: sumLine!.split(/\s+/)[0]!, seconds };
}

test('two guests on the in-process L2 switch: ping both ways, a file intact over a clean link and over 5% loss + 10 ms delay', async (t) => {
  if (!requireKvm(t)) return;
  const img = await getDefaultImage({ build: true, verify: inLab ? 'size' : 'full' });
  const sw = new L2Switch();
  const shaper = new LinkShaper(sw.port('a'), { seed: 0x8139 });
  const portB = sw.port('b');
  t.after(() => { shaper.close(); portB.close(); sw.close(); });

  const base = `${DEFAULT_CMDLINE} quiet`;
  await using a = await Machine.create({
    kernel: img.vmlinux, initrd: img.initrd, memory: '256M', cpus: 1,
    cmdline: `${base} nkvm.ip=${A_IP}/24 nkvm.hostname=a`, net: [{ backend: shaper, mac: '52:54:00:8a:03:01', revision: 0x20 }],
  });
  await using b = await Machine.create({
    kernel: img.vmlinux, initrd: img.initrd, memory: '256M', cpus: 1,
    cmdline: `${base} nkvm.ip=${B_IP}/24 nkvm.hostname=b`, net: [{ backend: portB, mac: '52:54:00:8a:03:02', revision: 0x10 }],
  });
  await Promise.all([bootToPrompt(a), bootToPrompt(b)]);

  await t.test('each guest pings the other', async () => {
    const ab = await shell(a, `ping -c 3 -W 10 ${B_IP}`);
    assert.equal(ab.status, 0, ab.output);
    const ba = await shell(b, `ping -c 3 -W 10 ${A_IP}`);
    assert.equal(ba.status, 0, ba.output);
    assert.ok(sw.stats.forwarded > 0, 'the switch learned both MACs and forwarded unicast');
  });

  const httpd = await shell(a, 'httpd -p 8080 -h /tmp');
  assert.equal(httpd.status, 0, httpd.output);

  await t.test(`${CLEAN_MIB} MiB from A to B over a clean link, sha256 intact`, async () => {
    const r = await moveFile(a, b, 'clean', CLEAN_MIB);
    assert.equal(r.got, r.sent);
    t.diagnostic(`clean: ${CLEAN_MIB} MiB in ${r.seconds.toFixed(1)} s (${(CLEAN_MIB * 8.388608 / r.seconds).toFixed(2)} Mbit/s)${inLab ? ', nested lab' : ''}`);
  });

  await t.test(`${SHAPED_MIB} MiB from A to B with 5% loss and 10 ms delay each way, sha256 intact`, async () => {
    shaper.set({ lossPercent: 5, delayMs: 10 });
    try {
      const lostBefore = shaper.egress.stats.lost + shaper.ingress.stats.lost;
      const r = await moveFile(a, b, 'shaped', SHAPED_MIB);
      assert.equal(r.got, r.sent);
      const lost = shaper.egress.stats.lost + shaper.ingress.stats.lost - lostBefore;
      assert.ok(lost > 0, 'the shaper dropped frames during the transfer');
      const retrans = await shell(a, "awk '/^Tcp:/ { n++; if (n == 2) print $13 }' /proc/net/snmp");
      t.diagnostic(`shaped: ${SHAPED_MIB} MiB in ${r.seconds.toFixed(1)} s, ${lost} frames dropped by the shaper, ` +
        `A's TCP RetransSegs ${retrans.output.trim()}`);
    } finally {
      shaper.set({ lossPercent: 0, delayMs: 0 });
    }
  });
});
