// Templates without a guest: the script a fork's guest runs, the memory admission, option
// checks that refuse before a VM exists, and template files refused (another kernel, not a
// template, another format version) or accepted — and a loaded template's fork() refused when
// closed or when its worst case does not fit in host memory, all before any VM is made.
import { test } from 'node:test';
import { execFileSync } from 'node:child_process';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { writeSnapshotFile, type JsonValue } from '../../lib/machine/snapshot-file.js';
import type { Image } from '../../lib/images/index.js';
import { checkForkAddress, clockLagMs, forkScript } from '../../lib/testing/fork-guest.js';
import { checkForkMemory, HOST_RESERVE, memAvailable } from '../../lib/testing/fork-memory.js';
import { loadTemplate, vmTemplate } from '../../lib/testing/template.js';
import { vmTest } from '../../lib/testing/scope.js';

const dir = mkdtempSync(join(tmpdir(), 'nkvm-template-'));
process.on('exit', () => rmSync(dir, { recursive: true, force: true }));
const MiB = 2 ** 20;

const KERNEL_SHA = 'a'.repeat(64);
const INITRD_SHA = 'b'.repeat(64);
/** An image as the loader sees it: only its manifest's checksums matter to loadTemplate(). */
const image = { name: 'fake', manifest: { files: { vmlinux: { sha256: KERNEL_SHA, size: 1 }, bzImage: { sha256: 'c'.repeat(64), size: 1 }, 'initramfs.cpio.gz': { sha256: INITRD_SHA, size: 1 } } } } as unknown as Image;

/** A template file as VmTemplate.save() writes it, with a 4 KiB "guest" (never run). */
function templateFile(name: string, opts: { memory?: number; template?: JsonValue | undefined; ports?: number } = {}): string {
  const memory = opts.memory ?? 4096;
  const ports = opts.ports ?? 0;
  const config = { memory, cpus: 1, comPorts: 1, clearXsave: false, ram: [{ slot: 0, guestPhysAddr: 0, size: 4096 }], nics: Array.from({ length: ports }, () => ({ mac: '52:54:00:12:34:56', revision: 0x20 })), tscKhz: null };
  const template = 'template' in opts ? opts.template : { version: 1, image: { name: 'fake', kernel: 'vmlinux', kernelSha256: KERNEL_SHA, initrdSha256: INITRD_SHA }, nics: Array.from({ length: ports }, () => 'port'), guestClockAtCaptureMs: 1_700_000_000_000 };
  const path = join(dir, name);
  const meta: { [k: string]: JsonValue } = { kind: 'node-kvm machine', config };
  if (template !== undefined) meta.template = template;
  writeSnapshotFile(path, meta, [
    { name: 'state', kind: 'state', data: new TextEncoder().encode(JSON.stringify({ config, state: { vcpus: [] } })) },
    { name: 'memory:0', kind: 'memory', data: new Uint8Array(4096) },
  ]);
  return path;
}

test('forkScript: clock first, then each NIC its MAC and address (static, dhcp, none)', () => {
  const s = forkScript({ lagMs: 3_600_000.4, nics: [
    { iface: 'eth0', mac: '52:54:00:01:02:03', address: '10.0.7.2/24' },
    { iface: 'eth1', mac: '52:54:00:01:02:04', address: 'dhcp' },
    { iface: 'eth2', mac: '52:54:00:01:02:05', address: 'none' },
  ] });
  const lines = s.trim().split('\n');
  assert.equal(lines[0], 'set -e');
  assert.ok(lines.includes('now=$(( (s * 1000 + u / 1000 + 3600000 + 500) / 1000 ))'), s);
  assert.ok(lines.includes('date -u -s "@$now" >/dev/null'));
  assert.ok(lines.indexOf('date -u -s "@$now" >/dev/null') < lines.findIndex((l) => l.includes('eth0')));
  assert.ok(lines.includes("ip link set dev 'eth0' address 52:54:00:01:02:03"));
  assert.ok(lines.includes("ip addr add 10.0.7.2/24 dev 'eth0'"));
  assert.ok(lines.some((l) => l.startsWith("udhcpc -i 'eth1' ")));
  assert.ok(lines.includes("ip addr flush dev 'eth2'"));
  assert.ok(!lines.some((l) => l.includes("dev 'eth2'") && l.startsWith('ip addr add')));
  assert.ok(!forkScript({ lagMs: 5, nics: [] }).includes('ip '));
  assert.throws(() => forkScript({ lagMs: NaN, nics: [] }), { code: 'ERR_INVALID_ARG' });
  // Without lagMs (the agent stepped the clock) only the NIC lines remain.
  const noClock = forkScript({ nics: [{ iface: 'eth0', mac: '52:54:00:12:34:56', address: 'none' }] });
  assert.ok(!noClock.includes('adjtimex') && !noClock.includes('date '));
  assert.ok(noClock.includes("ip link set dev 'eth0' address 52:54:00:12:34:56"));
});

test('the clock lines compute the guest clock plus the lag, rounded to the second (run by sh with adjtimex faked)', () => {
  const clockLines = forkScript({ lagMs: 2500, nics: [] }).split('\n').filter((l) => !l.startsWith('date '));
  const adjtimex = "adjtimex() { printf '    mode:         0\\n    time.tv_sec:  1000\\n    time.tv_usec: 700000\\n    return value: 5 (clock not synchronized)\\n'; }";
  const out = execFileSync('sh', ['-c', [adjtimex, ...clockLines, 'echo "$now"'].join('\n')], { encoding: 'utf8' });
  assert.equal(out.trim(), '1003'); // 1000.7 s + 2.5 s = 1003.2 s → 1003
  assert.equal(clockLagMs(1_000_000, 1_003_500), 3500);
});

test('checkForkAddress accepts dhcp, none and IPv4/prefix only', () => {
  for (const ok of ['dhcp', 'none', '10.0.0.1/24', '192.168.255.254/32']) checkForkAddress(ok, 'x');
  for (const bad of ['10.0.0.1', '10.0.0.256/24', '10.0.0.1/33', 'fe80::1/64', '', 5, null]) {
    assert.throws(() => checkForkAddress(bad, 'fork: net[0]'), { code: 'ERR_INVALID_ARG', message: /fork: net\[0\]: ip must be/ });
  }
});

test('memory admission: live forks count at their full guest RAM; refusal says how many fit', () => {
  assert.equal(memAvailable('MemTotal: 100 kB\nMemAvailable:   2048 kB\n'), 2048 * 1024);
  assert.equal(memAvailable('MemTotal: 100 kB\n'), undefined);
  assert.ok((memAvailable() ?? 1) > 0);
  const available = 1024 * MiB + HOST_RESERVE;
  checkForkMemory({ ram: 256 * MiB, liveRam: 768 * MiB, liveForks: 3, available, template: 't' });
  assert.throws(() => checkForkMemory({ ram: 256 * MiB, liveRam: 1024 * MiB, liveForks: 4, available, template: 't' }),
    { code: 'ERR_FORK_MEMORY', message: /4 live fork\(s\) may grow to 1024 MiB .* no more forks fit/ });
  assert.throws(() => checkForkMemory({ ram: 512 * MiB, liveRam: 0, liveForks: 0, available: 300 * MiB, template: 't' }), { code: 'ERR_FORK_MEMORY' });
  checkForkMemory({ ram: 2 ** 40, liveRam: 0, liveForks: 0, available: undefined, template: 't' });
});

test('vmTemplate and vmTest refuse bad options before any VM exists', async () => {
  await assert.rejects(vmTemplate({ memroy: '1G' } as never), { code: 'ERR_INVALID_ARG', message: /unknown option "memroy"/ });
  await assert.rejects(vmTemplate({ setup: 'echo hi' } as never), { code: 'ERR_INVALID_ARG', message: /setup must be a function/ });
  await assert.rejects(vmTemplate({ net: 'tap' } as never), { code: 'ERR_INVALID_NET' });
  await assert.rejects(vmTemplate({ net: -1 }), { code: 'ERR_INVALID_NET' });
  assert.throws(() => vmTest('x', { template: {} } as never, async () => {}), { code: 'ERR_INVALID_ARG', message: /template must be a VmTemplate/ });
});

test('loadTemplate: a file from this image loads; fork() is refused closed or beyond memory, before a VM exists', async () => {
  const tpl = await loadTemplate(templateFile('ok.nkvm'), { image });
  assert.equal(tpl.name, 'ok');
  assert.deepEqual(tpl.nics, []);
  await assert.rejects(tpl.fork({ net: [{ backend: {} }] } as never), { code: 'ERR_INVALID_NET' });
  await assert.rejects(tpl.fork({ nmae: 'x' } as never), { code: 'ERR_INVALID_ARG' });
  await tpl.close();
  assert.equal(tpl.closed, true);
  await assert.rejects(tpl.fork(), { code: 'ERR_TEMPLATE_CLOSED' });
  assert.throws(() => tpl.save(join(dir, 'again.nkvm')), { code: 'ERR_TEMPLATE_CLOSED' });

  // A port NIC needs its backend; a MAC or address that is not plain is refused (it goes into a shell script).
  const ported = await loadTemplate(templateFile('ported.nkvm', { ports: 1 }), { image });
  assert.deepEqual(ported.nics, ['port']);
  const backend = { send() {}, onReceive: () => () => {}, onLinkChange: () => () => {}, close() {} };
  await assert.rejects(ported.fork(), { code: 'ERR_INVALID_NET', message: /NIC 0 needs a backend/ });
  await assert.rejects(ported.fork({ net: [{ backend, mac: '52:54:00:00:00:01; reboot' }] } as never), { code: 'ERR_INVALID_MAC' });
  await assert.rejects(ported.fork({ net: [{ backend, ip: '10.0.0.1/24; reboot' }] } as never), { code: 'ERR_INVALID_ARG' });
  await ported.close();

  // Forks started together are admitted one by one: with room for one, the second is refused
  // (the first fails later, on this fake snapshot, and gives its reservation back).
  const room = (memAvailable() ?? 2 ** 34) - HOST_RESERVE;
  const one = await loadTemplate(templateFile('one.nkvm', { memory: Math.floor((room * 0.7) / 4096) * 4096 }), { image });
  const [first, second] = await Promise.allSettled([one.fork(), one.fork()]);
  assert.equal(first.status, 'rejected');
  assert.notEqual((first as PromiseRejectedResult).reason.code, 'ERR_FORK_MEMORY');
  assert.equal(second.status, 'rejected');
  assert.equal((second as PromiseRejectedResult).reason.code, 'ERR_FORK_MEMORY');
  await assert.rejects(one.fork({ net: [] }), (e: NodeJS.ErrnoException) => e.code !== 'ERR_FORK_MEMORY'); // released again
  await one.close();

  // A guest bigger than the host: refused up front, with the sizes in the message.
  const huge = await loadTemplate(templateFile('huge.nkvm', { memory: 2 ** 50 }), { image });
  await assert.rejects(huge.fork(), { code: 'ERR_FORK_MEMORY', message: /cannot fork template huge/ });
  await huge.close();
});

test('loadTemplate refuses another kernel or initramfs, a snapshot that is no template, another format version', async () => {
  const otherKernel = { ...image, manifest: { files: { ...image.manifest.files, vmlinux: { sha256: 'd'.repeat(64), size: 1 } } } } as unknown as Image;
  await assert.rejects(loadTemplate(templateFile('k.nkvm'), { image: otherKernel }), { code: 'ERR_TEMPLATE_MISMATCH', message: /another kernel \(aaaaaaaaaaaa…\) than image fake here \(dddddddddddd…\)/ });
  const otherInitrd = { ...image, manifest: { files: { ...image.manifest.files, 'initramfs.cpio.gz': { sha256: 'e'.repeat(64), size: 1 } } } } as unknown as Image;
  await assert.rejects(loadTemplate(templateFile('i.nkvm'), { image: otherInitrd }), { code: 'ERR_TEMPLATE_MISMATCH', message: /another initramfs/ });
  await assert.rejects(loadTemplate(templateFile('plain.nkvm', { template: undefined }), { image }), { code: 'ERR_TEMPLATE_MISMATCH', message: /not a template/ });
  const v = templateFile('v2.nkvm');
  const bytes = readFileSync(v);
  bytes.writeUInt32LE(99, 8);
  writeFileSync(v, bytes);
  await assert.rejects(loadTemplate(v, { image }), { code: 'ERR_SNAPSHOT_VERSION' });
  await assert.rejects(loadTemplate('', { image }), { code: 'ERR_INVALID_ARG' });
  await assert.rejects(loadTemplate(join(dir, 'missing.nkvm'), { image }), { code: 'ERR_FILE' });
});
