// `npm run bench -- host-calls`: what running a 9P server's non-blocking host calls on the main
// thread (docs/9p.md, "Where host calls run") buys against sending every call to the libuv
// threadpool. Two machines in one process, side by side: one export served each way (the same
// host directory), the same guest commands alternated between them, `ls -lR` of a tree and `dd`
// of a file through the agent. Ratios are inline/pooled: < 1 means inline is faster. With two
// machines in the process each extra event the busy one waits for can cost it a turn of the
// idle one, which is where the difference shows.
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { doctor } from '../lib/doctor.js';
import { P9Server } from '../lib/devices/virtio/9p/server.js';
import { runInLab } from '../lib/lab/index.js';
import { bootVm, type TestVm } from '../lib/testing/index.js';
import { getDefaultImage } from '../lib/images/index.js';
import { median } from './exit-roundtrip.js';

const TREE_DIRS = 10;
const TREE_FILES = 50;
const FILE_MIB = 32;

const ROWS: Array<[string, string]> = [
  ['ls -lR', 'ls -lR /mnt/s/tree > /dev/null'],
  ['read', `dd if=/mnt/s/big of=/dev/null bs=512k 2>/dev/null`],
  ['write', `dd if=/dev/zero of=/mnt/s/w bs=512k count=${FILE_MIB * 2} 2>/dev/null && rm /mnt/s/w`],
];

export interface HostCallsBenchOptions {
  runs?: number;
  log?: (line: string) => void;
}

export async function runHostCallsBench(opts: HostCallsBenchOptions = {}): Promise<void> {
  const runs = Math.max(1, opts.runs ?? 3);
  const log = opts.log ?? ((l: string) => process.stdout.write(l + '\n'));
  if (process.env.NODE_KVM_LAB !== '1' && !(await doctor()).canBootLinuxDirectly) {
    log('host-calls: this host\'s /dev/kvm cannot boot Linux; running the bench inside one nested-lab boot');
    await getDefaultImage({ build: true });
    const index = fileURLToPath(new URL('./index.js', import.meta.url));
    const r = await runInLab({ command: [process.execPath, index, 'host-calls', `--runs=${runs}`], stdout: process.stdout, stderr: process.stderr });
    if (r.exitCode !== 0) throw new Error(`host-calls bench in the lab failed (exit ${r.exitCode}): ${r.error ?? ''}\n${r.consoleTail}`);
    return;
  }
  const dir = mkdtempSync(join(tmpdir(), 'node-kvm-host-calls-'));
  const vms: Record<'inline' | 'pooled', TestVm | undefined> = { inline: undefined, pooled: undefined };
  try {
    for (let d = 0; d < TREE_DIRS; d++) {
      mkdirSync(join(dir, 'tree', `d${d}`), { recursive: true });
      for (let f = 0; f < TREE_FILES; f++) writeFileSync(join(dir, 'tree', `d${d}`, `f${f}`), String(f));
    }
    writeFileSync(join(dir, 'big'), Buffer.alloc(FILE_MIB << 20, 1));
    for (const mode of ['inline', 'pooled'] as const) {
      P9Server.defaults = { inline: mode === 'inline' };
      try {
        vms[mode] = await bootVm({ memory: '512M', timeout: 300_000, shares: [{ path: dir, tag: 's', mount: '/mnt/s' }] });
      } finally {
        P9Server.defaults = {};
      }
    }
    log(`host-calls: ${TREE_DIRS * TREE_FILES} files, ${FILE_MIB} MiB, 512M guests, cache=none, two machines in one process, ${runs} rounds alternating`);
    const times = new Map<string, number[]>();
    for (let r = 0; r < runs; r++) {
      for (const mode of ['inline', 'pooled'] as const) {
        for (const [row, cmd] of ROWS) {
          const t0 = performance.now();
          await vms[mode]!.execOk(cmd, { timeout: 600_000 });
          const ms = performance.now() - t0;
          times.set(`${mode} ${row}`, [...(times.get(`${mode} ${row}`) ?? []), ms]);
          log(`  round ${r + 1} ${mode.padEnd(6)} ${row.padEnd(6)} ${ms.toFixed(0)} ms`);
        }
      }
    }
    log('  medians, time inline/pooled (< 1: inline is faster):');
    for (const [row] of ROWS) {
      const i = median(times.get(`inline ${row}`)!);
      const p = median(times.get(`pooled ${row}`)!);
      log(`    ${row.padEnd(6)} inline ${i.toFixed(0)} ms, pooled ${p.toFixed(0)} ms, ratio ${(i / p).toFixed(3)}×`);
    }
  } finally {
    for (const v of Object.values(vms)) await v?.close();
    rmSync(dir, { recursive: true, force: true });
  }
}
