// Templates and forks on a real Linux guest (the default image, vmlinux, 256M). One template
// is booted with one unplugged NIC and a setup that writes a file; then:
//   - 4 forks at once: each sees the file, changes it, and never sees another's change; each
//     has its own MAC; on one in-process switch they ping each other by their own addresses;
//     their extra memory (the process's anonymous RSS per fork, idle after fork()) is measured
//     and asserted <= 10% of guest RAM;
//   - a fork's wall clock is within a second of the host's, though the template is older;
//   - the template saved to a file is forked by a second process (fork-child.ts);
//   - bad input: a setup that throws (coded, console tail, nothing left running), a fork of a
//     closed template, a template file from another kernel.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { L2Switch } from '../../lib/net/switch.js';
import { loadTemplate, vmTemplate, type VmTemplate } from '../../lib/testing/template.js';
import type { TestVm } from '../../lib/testing/vm.js';
import { loadSnapshot } from '../../lib/machine/snapshot.js';
import { requireKvm } from '../helpers/kvm.js';
import { defaultImage } from './helpers.js';

const MEMORY = 256 * 2 ** 20;
const FORKS = 4;
const SETUP_TEXT = 'written by the template setup';
const exec = promisify(execFile);

let tpl: VmTemplate;
let dir: string;

/** Anonymous resident memory of this process (VmRSS's RssAnon), bytes. */
function rssAnon(): number {
  const m = /^RssAnon:\s+(\d+) kB$/m.exec(readFileSync('/proc/self/status', 'latin1'));
  return Number(m![1]) * 1024;
}

/** The guest's wall clock minus the host's, in ms (the host's read at the middle of the exec). */
async function clockSkewMs(vm: TestVm): Promise<number> {
  const t0 = Date.now();
  const r = await vm.execOk('adjtimex');
  const t1 = Date.now();
  const sec = Number(/time\.tv_sec:\s+(\d+)/.exec(r.stdout)?.[1]);
  const usec = Number(/time\.tv_usec:\s+(\d+)/.exec(r.stdout)?.[1]);
  assert.ok(Number.isFinite(sec) && Number.isFinite(usec), r.stdout);
  return sec * 1000 + usec / 1000 - (t0 + t1) / 2;
}

before(async () => {
  dir = mkdtempSync(join(tmpdir(), 'nkvm-fork-'));
  await defaultImage();
  tpl = await vmTemplate({
    name: 'tpl', memory: MEMORY, net: 1,
    setup: async (vm) => {
      await vm.writeFile('/root/setup.txt', SETUP_TEXT);
    },
  });
});

after(async () => {
  await tpl?.close();
  rmSync(dir, { recursive: true, force: true });
});

test('4 forks at once: the setup file, isolation, own MACs, ping on one switch, RSS per idle fork', async (t) => {
  if (!requireKvm(t)) return;
  const sw = new L2Switch();
  t.after(() => sw.close());
  const ip = (i: number): string => `10.0.7.${i + 1}`;
  const rss0 = rssAnon();
  const t0 = performance.now();
  const forks = await Promise.all(Array.from({ length: FORKS }, (_, i) => tpl.fork({ name: `f${i}`, net: [{ backend: sw.port(`f${i}`), ip: `${ip(i)}/24` }], t })));
  const forkMs = performance.now() - t0;
  const perFork = (rssAnon() - rss0) / FORKS;
  t.diagnostic(`${FORKS} forks at once: ${forkMs.toFixed(0)} ms; extra anonymous RSS per idle fork ${(perFork / 2 ** 20).toFixed(1)} MiB `
    + `(${((100 * perFork) / MEMORY).toFixed(1)}% of ${MEMORY / 2 ** 20} MiB guest RAM)`);
  assert.ok(perFork <= 0.1 * MEMORY, `an idle fork costs ${(perFork / 2 ** 20).toFixed(1)} MiB, more than 10% of its guest RAM`);
  // The template's agent was idle at the snapshot: every fork talks to its restored agent.
  for (const f of forks) assert.equal(f.channel, 'agent', `${f.name}: ${f.agentProblem}`);

  // Each sees the template's file, then writes its own; none sees another's.
  await Promise.all(forks.map(async (vm, i) => {
    assert.equal((await vm.readFile('/root/setup.txt')).toString(), SETUP_TEXT);
    await vm.writeFile('/root/setup.txt', `fork ${i}`);
    await vm.writeFile(`/root/only-${i}`, 'x');
  }));
  await Promise.all(forks.map(async (vm, i) => {
    assert.equal((await vm.readFile('/root/setup.txt')).toString(), `fork ${i}`);
    const others = (await vm.execOk('ls /root')).stdout.split(/\s+/).filter((f) => f.startsWith('only-'));
    assert.deepEqual(others, [`only-${i}`]);
  }));

  // Own MACs and addresses; every fork pings the next by address.
  const macs = await Promise.all(forks.map(async (vm) => (await vm.execOk('cat /sys/class/net/eth0/address')).stdout.trim()));
  assert.equal(new Set(macs).size, FORKS, `MACs: ${macs.join(' ')}`);
  for (const [i, vm] of forks.entries()) {
    const addr = (await vm.execOk('ip -4 addr show dev eth0')).stdout;
    assert.match(addr, new RegExp(`inet ${ip(i).replace(/\./g, '\\.')}/24`));
  }
  await Promise.all(forks.map((vm, i) => vm.execOk(`ping -c 2 -W 10 ${ip((i + 1) % FORKS)}`, { timeout: 120_000 })));
  // The switch learnt each fork's own MAC on the port it was given.
  for (const [i, mac] of macs.entries()) assert.equal(sw.lookup(mac)?.name, `f${i}`);
});

test('a fork\'s clock is within a second of the host\'s, though the template is older', async (t) => {
  if (!requireKvm(t)) return;
  // Let the template's clock fall behind by more than the bound, so a fork without the fix fails.
  await new Promise((r) => setTimeout(r, 3000));
  const sw = new L2Switch();
  t.after(() => sw.close());
  await using vm = await tpl.fork({ net: [{ backend: sw.port() }] });
  const skew = await clockSkewMs(vm);
  t.diagnostic(`guest clock - host clock right after fork: ${skew.toFixed(0)} ms`);
  assert.ok(Math.abs(skew) <= 1000, `guest clock is off by ${skew.toFixed(0)} ms`);
});

test('a template saved to a file is forked by a second process; one from another kernel is refused', async (t) => {
  if (!requireKvm(t)) return;
  const file = join(dir, 'tpl.nkvm');
  tpl.save(file);
  const child = fileURLToPath(new URL('./fork-child.js', import.meta.url));
  const { stdout } = await exec(process.execPath, [child, file], { timeout: 300_000 });
  const got = JSON.parse(stdout.trim().split('\n').pop()!) as { text: string; skewMs: number; mac: string; channel: string };
  assert.equal(got.text, SETUP_TEXT);
  assert.ok(Math.abs(got.skewMs) <= 1000, `the second process's fork is off by ${got.skewMs} ms`);
  assert.equal(got.channel, 'agent', 'a fork from a template file uses the restored agent');
  t.diagnostic(`second process: fork from ${file}, clock skew ${got.skewMs.toFixed(0)} ms, MAC ${got.mac}`);

  // The same file claiming another kernel: refused before any VM exists.
  const snap = loadSnapshot(file, { verify: 'state' });
  const meta = structuredClone(snap.fileMeta) as { template: { image: { kernelSha256: string } } };
  meta.template.image.kernelSha256 = '0'.repeat(64);
  const other = join(dir, 'other-kernel.nkvm');
  snap.save(other, { template: meta.template });
  snap.close();
  const fds = readdirSync('/proc/self/fd').length;
  await assert.rejects(loadTemplate(other), (e: NodeJS.ErrnoException) => e.code === 'ERR_TEMPLATE_MISMATCH' && /another kernel/.test(e.message));
  assert.equal(readdirSync('/proc/self/fd').length, fds, 'the refused file left an fd open');
  writeFileSync(join(dir, 'not-a-snapshot.nkvm'), 'hello');
  await assert.rejects(loadTemplate(join(dir, 'not-a-snapshot.nkvm')), { code: 'ERR_SNAPSHOT_CORRUPT' });
});

test('bad input: a setup that throws, a closed template', async (t) => {
  if (!requireKvm(t)) return;
  const fds = readdirSync('/proc/self/fd').length;
  await assert.rejects(vmTemplate({ name: 'broken', memory: MEMORY, setup: async (vm) => {
    await vm.execOk('echo about-to-fail');
    throw new Error('setup went wrong');
  } }), (e: NodeJS.ErrnoException) => {
    assert.equal(e.code, 'ERR_TEMPLATE_SETUP');
    assert.match(e.message, /setup went wrong/);
    assert.match(e.message, /console tail/);
    return true;
  });
  // Nothing left running: the template VM's fds (/dev/kvm, VM, vCPU, eventfds) are closed.
  assert.equal(readdirSync('/proc/self/fd').length, fds, 'a failed template left fds open');

  // A template without NICs holds the next fork's machine, built ahead: close() releases it too.
  const closing = await vmTemplate({ name: 'closing', memory: MEMORY });
  await closing.close();
  assert.equal(readdirSync('/proc/self/fd').length, fds, 'a closed template left fds open');
  await assert.rejects(closing.fork(), { code: 'ERR_TEMPLATE_CLOSED' });
  assert.throws(() => closing.save(join(dir, 'x.nkvm')), { code: 'ERR_TEMPLATE_CLOSED' });
});
