// Exit round trip: PIO and MMIO exits handled in JS (a vcpu.run() loop with minimal handling)
// against the same loop in C (bench/c/exit-loop.c, raw ioctls), same guest image
// (test/guests/exit-loop.S), same VM shape, alternating runs. Prints medians in µs per exit
// and the JS/C ratio (target ≤ 1.15). No absolute-time assertions: the numbers are reported.
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { ensureGuestImage, guestSourceDir, PORT } from '../test/guests/build.js';
import { attach, createGuestVm, enterRealMode, type GuestVm } from '../test/guests/run.js';

export type Mode = 'pio' | 'mmio';

export interface ExitRoundtripOptions {
  iterations?: number;
  warmup?: number;
  runs?: number;
  modes?: Mode[];
  log?: (line: string) => void;
}

export interface ExitRoundtripResult {
  mode: Mode;
  jsUs: number[];
  cUs: number[];
  jsBusUs: number[];
  jsMedianUs: number;
  cMedianUs: number;
  jsBusMedianUs: number;
  ratio: number;
}

const MMIO_ADDR = 0xa0000;

export function median(xs: readonly number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 === 1 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}

/** Run the guest to its report exit with minimal handling; returns the loop exits counted. */
function loopMinimal(g: GuestVm): number {
  const vcpu = g.vcpu;
  let n = 0;
  for (;;) {
    const e = vcpu.run();
    if (e.reason === 'io') {
      if (e.port === PORT.LOOP) { n++; continue; }
      if (e.port === PORT.REPORT) return n;
    } else if (e.reason === 'mmio') {
      if (e.isWrite && e.address === MMIO_ADDR) { n++; continue; }
    } else if (e.reason === 'interrupted') {
      continue;
    }
    throw new Error(`exit-loop guest: unexpected exit ${e.reason}`);
  }
}

/** The same, but every exit goes through PioBus.handleIo / MmioBus.handleMmio to a device. */
function loopBus(g: GuestVm): number {
  const vcpu = g.vcpu;
  let reported = false;
  for (;;) {
    const e = vcpu.run();
    if (e.reason === 'io') {
      g.pio.handleIo(e);
      if (e.port === PORT.REPORT) reported = true;
    } else if (e.reason === 'mmio') {
      g.mmio.handleMmio(e);
    } else if (e.reason !== 'interrupted') {
      throw new Error(`exit-loop guest: unexpected exit ${e.reason}`);
    }
    if (reported) return -1;
  }
}

function jsOnce(mode: Mode, iterations: number, warmup: number, viaBus: boolean): number {
  const rbx = mode === 'mmio' ? 1n : 0n;
  using g = createGuestVm({ guest: 'exit-loop', regs: { rcx: BigInt(warmup), rbx } });
  let count = 0;
  const sink = { read: () => 0, write: () => { count++; } };
  attach(g, 'LOOP', sink);
  attach(g, 'REPORT', { read: () => 0, write: () => {} });
  g.mmio.register(MMIO_ADDR, 4, sink, 'sink');
  const loop = viaBus ? loopBus : loopMinimal;
  loop(g);
  enterRealMode(g.vcpu, { rcx: BigInt(iterations), rbx });
  count = 0;
  const t0 = process.hrtime.bigint();
  const n = loop(g);
  const ns = Number(process.hrtime.bigint() - t0);
  const seen = viaBus ? count : n;
  if (seen !== iterations) throw new Error(`JS loop saw ${seen} exits, expected ${iterations}`);
  return ns / iterations / 1000;
}

function buildC(): { exe: string; cleanup: () => void } {
  const root = dirname(dirname(guestSourceDir()));
  const dir = mkdtempSync(join(tmpdir(), 'node-kvm-bench-'));
  const exe = join(dir, 'exit-loop');
  execFileSync('gcc', ['-O2', '-o', exe, join(root, 'bench', 'c', 'exit-loop.c')], { stdio: ['ignore', 'ignore', 'inherit'] });
  return { exe, cleanup: () => rmSync(dir, { recursive: true, force: true }) };
}

function cOnce(exe: string, image: string, mode: Mode, iterations: number, warmup: number): number {
  const out = execFileSync(exe, [image, mode, String(iterations), String(warmup)], { encoding: 'utf8' });
  const r = JSON.parse(out) as { exits: number; ns: number };
  if (r.exits !== iterations) throw new Error(`C loop saw ${r.exits} exits, expected ${iterations}`);
  return r.ns / iterations / 1000;
}

export function runExitRoundtrip(opts: ExitRoundtripOptions = {}): ExitRoundtripResult[] {
  const iterations = opts.iterations ?? 20_000;
  const warmup = opts.warmup ?? 2_000;
  const runs = Math.max(5, opts.runs ?? 7);
  const modes = opts.modes ?? ['pio', 'mmio'];
  const log = opts.log ?? ((l: string) => process.stdout.write(l + '\n'));
  const image = ensureGuestImage('exit-loop');
  const c = buildC();
  const results: ExitRoundtripResult[] = [];
  try {
    log(`exit-roundtrip: ${iterations} exits per run (after ${warmup} warm-up exits), ${runs} alternating runs per side`);
    for (const mode of modes) {
      const jsUs: number[] = [];
      const cUs: number[] = [];
      const jsBusUs: number[] = [];
      for (let i = 0; i < runs; i++) {
        // Alternate the order so drift on a shared machine hits both sides alike.
        if (i % 2 === 0) {
          jsUs.push(jsOnce(mode, iterations, warmup, false));
          cUs.push(cOnce(c.exe, image, mode, iterations, warmup));
        } else {
          cUs.push(cOnce(c.exe, image, mode, iterations, warmup));
          jsUs.push(jsOnce(mode, iterations, warmup, false));
        }
        jsBusUs.push(jsOnce(mode, iterations, warmup, true));
      }
      const r: ExitRoundtripResult = {
        mode, jsUs, cUs, jsBusUs,
        jsMedianUs: median(jsUs), cMedianUs: median(cUs), jsBusMedianUs: median(jsBusUs),
        ratio: median(jsUs) / median(cUs),
      };
      results.push(r);
      const fmt = (xs: number[]): string => xs.map((x) => x.toFixed(2)).join(' ');
      log(`  ${mode.toUpperCase().padEnd(4)} runs JS   [${fmt(jsUs)}] µs/exit`);
      log(`  ${mode.toUpperCase().padEnd(4)} runs C    [${fmt(cUs)}] µs/exit`);
      log(`  ${mode.toUpperCase().padEnd(4)} runs JS+bus [${fmt(jsBusUs)}] µs/exit`);
      log(`  ${mode.toUpperCase().padEnd(4)} median JS ${r.jsMedianUs.toFixed(2)} µs  C ${r.cMedianUs.toFixed(2)} µs  ` +
        `JS/C ${r.ratio.toFixed(3)}× (target ≤ 1.15×: ${r.ratio <= 1.15 ? 'met' : 'NOT met'})  ` +
        `JS via bus ${r.jsBusMedianUs.toFixed(2)} µs (${(r.jsBusMedianUs / r.cMedianUs).toFixed(3)}×)`);
    }
  } finally {
    c.cleanup();
  }
  return results;
}
