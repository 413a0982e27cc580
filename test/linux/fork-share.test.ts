// Forks of a template that mounted a host directory (virtio-9p, Debian's v9fs client). The
// template's setup reads a file of the share and leaves `tail -f` holding a file of it open;
// then:
//   - a fork on the template's own directory sees what the host writes there after the fork;
//   - a fork given its own directory (ForkOptions.shares) reads and writes that one: the
//     guest's mount and the file `tail` holds open find their files again by path there, and
//     nothing reaches the template's directory;
//   - a fork whose directory lacks the held file: that fid is stale, the mount still works.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { appendFileSync, cpSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { vmTemplate, type VmTemplate } from '../../lib/testing/template.js';
import type { TestVm } from '../../lib/testing/vm.js';
import { requireKvm } from '../helpers/kvm.js';
import { defaultImage } from './helpers.js';

let tpl: VmTemplate;
let dir: string;
let tplDir: string;

/** Polls `cmd`'s stdout in the guest until it includes `want` (tail -f reads once a second). */
async function eventually(vm: TestVm, cmd: string, want: string, ms = 60_000): Promise<string> {
  const end = Date.now() + ms;
  for (;;) {
    const out = (await vm.exec(cmd)).stdout;
    if (out.includes(want) || Date.now() > end) return out;
    await new Promise((r) => setTimeout(r, 500));
  }
}

before(async () => {
  dir = mkdtempSync(join(tmpdir(), 'nkvm-fork-share-'));
  tplDir = join(dir, 'template');
  mkdirSync(tplDir);
  writeFileSync(join(tplDir, 'hello'), 'from the template directory\n');
  writeFileSync(join(tplDir, 'log'), 'line 1\n');
  await defaultImage();
  tpl = await vmTemplate({
    name: 'tpl-share', memory: '256M',
    shares: [{ path: tplDir, tag: 'work', mount: '/mnt/work' }],
    setup: async (vm) => {
      await vm.execOk('cat /mnt/work/hello >/root/seen && (tail -f /mnt/work/log >/root/tailed 2>&1 </dev/null &)');
      assert.match(await eventually(vm, 'cat /root/tailed', 'line 1'), /line 1/);
    },
  });
});

after(async () => {
  await tpl?.close();
  rmSync(dir, { recursive: true, force: true });
});

test('a fork on the template\'s directory sees the host\'s writes made after the fork', async (t) => {
  if (!requireKvm(t)) return;
  await using vm = await tpl.fork({ name: 'same', t });
  // vmTemplate() built this fork's machine ahead: the fork only restored into it.
  assert.deepEqual(tpl.counters, { forks: 1, intoSpare: 1 });
  assert.equal((await vm.execOk('cat /root/seen')).stdout, 'from the template directory\n');
  writeFileSync(join(tplDir, 'after'), 'written by the host after the fork\n');
  assert.equal((await vm.execOk('cat /mnt/work/after')).stdout, 'written by the host after the fork\n');
});

test('a fork with its own directory: the mount and a file held open move there; the template\'s stays untouched', async (t) => {
  if (!requireKvm(t)) return;
  const own = join(dir, 'own');
  cpSync(tplDir, own, { recursive: true });
  writeFileSync(join(own, 'hello'), 'from the fork\'s own directory\n');
  await using vm = await tpl.fork({ name: 'own', shares: [{ tag: 'work', path: own }], t });
  assert.equal((await vm.execOk('cat /mnt/work/hello')).stdout, 'from the fork\'s own directory\n');
  await vm.execOk('echo from the guest >/mnt/work/out && mkdir /mnt/work/made');
  assert.equal(readFileSync(join(own, 'out'), 'utf8'), 'from the guest\n');
  assert.ok(existsSync(join(own, 'made')));
  assert.ok(!existsSync(join(tplDir, 'out')) && !existsSync(join(tplDir, 'made')), 'nothing reached the template\'s directory');
  // tail's open file was reopened in the fork's directory: a line the host appends there arrives.
  appendFileSync(join(own, 'log'), 'line 2 (fork)\n');
  const tailed = await eventually(vm, 'cat /root/tailed', 'line 2 (fork)');
  assert.match(tailed, /line 2 \(fork\)/, `tail -f did not read on through its restored fid: ${tailed}`);
});

test('a fork whose directory lacks the files the guest held: those answer ESTALE, the mount works on', async (t) => {
  if (!requireKvm(t)) return;
  const empty = join(dir, 'empty');
  mkdirSync(empty);
  await using vm = await tpl.fork({ name: 'empty', shares: [{ tag: 'work', path: empty }], t });
  const r = await vm.exec('cat /mnt/work/hello');
  assert.notEqual(r.exitCode, 0, 'the file is not in this directory');
  await vm.execOk('echo new >/mnt/work/new');
  assert.equal(readFileSync(join(empty, 'new'), 'utf8'), 'new\n');
  assert.equal((await vm.execOk('ls /mnt/work')).stdout, 'new\n');
  // tail's fid is stale: its reads fail, and the guest goes on.
  assert.equal((await vm.execOk('echo alive')).stdout, 'alive\n');
});
