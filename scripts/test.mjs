#!/usr/bin/env node
// The test command (`npm test`). Three tiers, each with its own counts:
//   unit   no /dev/kvm                       dist/test/unit/*.test.js
//   kvm    small guests on the host's KVM    dist/test/kvm/*.test.js
//   linux  real kernels                       dist/test/linux/*.test.js
// The linux tier needs a KVM that boots stock Linux. Where the host cannot (kvm_pvm, no
// VMX/SVM), it runs inside the nested lab (`node-kvm lab`), together with a second run of the
// kvm tier, so the small guests are proven under real (emulated) SVM too. The lab emulates one
// CPU on one host CPU, so with two or more host CPUs the files are shared between two lab boots
// that run at once (NODE_KVM_LABS=N sets how many).
//
// Usage: node scripts/test.mjs [--tier unit,kvm,linux] [--in-lab [--files=TIER/FILE,...]] [FILTER]
import { spawn } from 'node:child_process';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { basename, dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const args = process.argv.slice(2);
const inLab = args.includes('--in-lab');
const tierArg = args.find((a) => a.startsWith('--tier='))?.slice(7);
const filter = args.find((a) => !a.startsWith('--'));
// In a lab: only these files (tier/name), the share of the lab work given to this boot.
const only = args.find((a) => a.startsWith('--files='))?.slice(8).split(',').filter(Boolean);
const tiers = tierArg ? tierArg.split(',') : inLab ? ['kvm', 'linux'] : ['unit', 'kvm', 'linux'];

function files(tier) {
  const dir = join(root, 'dist', 'test', tier);
  if (!existsSync(dir)) return [];
  return readdirSync(dir).filter((f) => f.endsWith('.test.js') && (!filter || f.includes(filter)) && (!only || only.includes(`${tier}/${f}`)))
    .sort().map((f) => join(dir, f));
}

/**
 * Wall-clock budget of one test file, per tier. Each file runs in its own `node --test`, so a
 * file that wedges (a guest or the lab gone quiet) is killed, counted as a failure with a
 * diagnosis, and the files after it still run. Override with NODE_KVM_FILE_TIMEOUT_S.
 */
const FILE_BUDGET_S = { unit: 180, kvm: 420, linux: 1200 };
/**
 * Files that need more than their tier's budget: the package test builds the addon with
 * node-gyp; the examples boot eight guests one after another in the lab.
 */
const FILE_BUDGET_OVERRIDE_S = { 'unit/package.test.js': 600, 'linux/examples.test.js': 1800 };

/** Where each thread of a process is (state and kernel wait channel): says whether a wedged
 *  test sits in KVM_RUN, in a futex or spins in JavaScript. */
function threadStates(pid) {
  const lines = [];
  const walk = (p) => {
    let tasks = [];
    try { tasks = readdirSync(`/proc/${p}/task`); } catch { return; }
    for (const t of tasks) {
      try {
        const stat = readFileSync(`/proc/${p}/task/${t}/stat`, 'latin1');
        const name = stat.slice(stat.indexOf('(') + 1, stat.lastIndexOf(')'));
        const state = stat.slice(stat.lastIndexOf(')') + 2).split(' ')[0];
        let wchan = '';
        try { wchan = readFileSync(`/proc/${p}/task/${t}/wchan`, 'latin1'); } catch { /* hidden */ }
        lines.push(`  pid ${p} tid ${t} ${name} ${state} ${wchan}`);
      } catch { /* gone */ }
    }
    let children = '';
    try { children = readFileSync(`/proc/${p}/task/${p}/children`, 'latin1'); } catch { /* none */ }
    for (const c of children.trim().split(/\s+/).filter(Boolean)) walk(c);
  };
  walk(pid);
  return lines.join('\n');
}

/** Run one test file under node --test, stream the output, return its parsed summary. */
function runFile(tier, file, budgetS) {
  return new Promise((resolve) => {
    const t0 = Date.now();
    const child = spawn(process.execPath, ['--test', '--test-reporter=spec', file], {
      cwd: root, stdio: ['ignore', 'pipe', 'inherit'], env: { ...process.env, NODE_KVM_TIER: tier }, detached: true,
    });
    let out = '';
    let timedOut = false;
    child.stdout.on('data', (d) => { out += d; process.stdout.write(d); });
    const timer = setTimeout(() => {
      timedOut = true;
      process.stdout.write(`\n✖ ${basename(file)} ran past its ${budgetS} s budget; its threads:\n${threadStates(child.pid)}\n`);
      try { process.kill(-child.pid, 'SIGKILL'); } catch { /* gone */ }
    }, budgetS * 1000);
    child.on('close', (code) => {
      clearTimeout(timer);
      // The runner's own summary is the last one: nested test output (examples run node --test
      // themselves) may print summary-looking lines earlier.
      const n = (k) => Number([...out.matchAll(new RegExp(`^\\S*\\s*${k} (\\d+)$`, 'gm'))].at(-1)?.[1] ?? 0);
      const r = { code: timedOut ? 124 : code ?? 1, tests: n('tests'), pass: n('pass'), fail: n('fail'), skipped: n('skipped'), cancelled: n('cancelled') };
      // A file that was killed, or crashed before reporting a failure, still counts as one.
      if (timedOut || (r.code !== 0 && r.fail === 0 && r.cancelled === 0)) { r.tests++; r.fail++; }
      process.stdout.write(`-- ${basename(file)}: ${r.pass}/${r.tests} passed in ${((Date.now() - t0) / 1000).toFixed(1)} s\n`);
      resolve(r);
    });
  });
}

/** Run a tier's files one after another; the tier's counts are the sums. */
async function runNodeTest(tier, list, where) {
  const budgetS = Number(process.env.NODE_KVM_FILE_TIMEOUT_S ?? FILE_BUDGET_S[tier] ?? 600);
  const sum = { tier, where, code: 0, tests: 0, pass: 0, fail: 0, skipped: 0, cancelled: 0 };
  for (const file of list) {
    const r = await runFile(tier, file, process.env.NODE_KVM_FILE_TIMEOUT_S ? budgetS : FILE_BUDGET_OVERRIDE_S[`${tier}/${basename(file)}`] ?? budgetS);
    if (r.code !== 0 && sum.code === 0) sum.code = r.code;
    for (const k of ['tests', 'pass', 'fail', 'skipped', 'cancelled']) sum[k] += r[k];
  }
  return sum;
}

async function canBootLinuxDirectly() {
  if (process.env.NODE_KVM_LAB === '1') return true; // inside L1: kvm_amd
  const { doctor } = await import(join(root, 'dist', 'lib', 'doctor.js'));
  return (await doctor()).canBootLinuxDirectly;
}

/** Each lab boot's whole budget: the file budgets bound a wedged test, this bounds a wedged L1. */
const LAB_BUDGET_MS = 45 * 60_000;

/**
 * Seconds each file took in the lab (CI, two lab boots at once, one L1 CPU each), used only to
 * share the files fairly between lab boots; a file not listed counts as LAB_FILE_WEIGHT_DEFAULT.
 */
const LAB_FILE_WEIGHTS = {
  'linux/net-user.test.js': 300,
  'linux/net-rtl8139.test.js': 355, 'linux/examples.test.js': 160, 'linux/examples-vitest.test.js': 60, 'linux/testing-exec.test.js': 218,
  'linux/net-switch.test.js': 108, 'linux/compat.test.js': 75, 'linux/boot.test.js': 74, 'linux/snapshot.test.js': 35, 'linux/console.test.js': 18,
  'kvm/net-tap.test.js': 64, 'kvm/snapshot-memfd.test.js': 33, 'kvm/leaks.test.js': 16,
};
const LAB_FILE_WEIGHT_DEFAULT = 8;

/** Split the lab's files into `n` shares of about equal time (longest first, to the lightest share). */
function shareLabFiles(labTiers, n) {
  const items = labTiers.flatMap((tier) => files(tier).map((f) => `${tier}/${basename(f)}`));
  const weight = (k) => LAB_FILE_WEIGHTS[k] ?? LAB_FILE_WEIGHT_DEFAULT;
  const shares = Array.from({ length: Math.max(1, Math.min(n, items.length)) }, () => ({ files: [], seconds: 0 }));
  for (const k of [...items].sort((a, b) => weight(b) - weight(a))) {
    const s = shares.reduce((a, b) => (b.seconds < a.seconds ? b : a));
    s.files.push(k);
    s.seconds += weight(k);
  }
  // Each share runs its files in the usual order: tier by tier, then by name.
  const tierOf = (k) => k.split('/')[0];
  for (const s of shares) {
    s.files.sort((a, b) => labTiers.indexOf(tierOf(a)) - labTiers.indexOf(tierOf(b)) || a.localeCompare(b));
    s.tiers = [...new Set(s.files.map(tierOf))];
  }
  return shares;
}

/** How many lab boots run at once: each keeps one host CPU busy. */
function labCount() {
  const env = process.env.NODE_KVM_LABS;
  if (env !== undefined) {
    const n = Number(env);
    if (!Number.isInteger(n) || n < 1 || n > 8) {
      throw Object.assign(new Error(`NODE_KVM_LABS must be an integer 1..8, got ${JSON.stringify(env)}`), { code: 'ERR_INVALID_ARG' });
    }
    return n;
  }
  return availableParallelism() >= 2 ? 2 : 1;
}

/** One lab boot running `share` of the lab's files; its tier results, or a failure that says why. */
async function runLabShare(runInLab, share, index, count, out) {
  const label = count > 1 ? `lab ${index + 1}/${count}` : 'lab';
  const cmd = [process.execPath, join(root, 'scripts', 'test.mjs'), '--in-lab', `--tier=${share.tiers.join(',')}`, `--files=${share.files.join(',')}`];
  let captured = '';
  const stdout = new (await import('node:stream')).Writable({
    write(chunk, _enc, cb) { captured += chunk; out.write(chunk); cb(); },
  });
  const res = await runInLab({ command: cmd, cwd: root, stdout, stderr: process.stderr, env: { CI: process.env.CI, NODE_KVM_FILE_TIMEOUT_S: process.env.NODE_KVM_FILE_TIMEOUT_S },
    timeoutMs: LAB_BUDGET_MS,
    log: (l) => process.stderr.write(`[${label}] ${l}\n`) });
  const results = [];
  for (const m of captured.matchAll(/^NODE-KVM-TIER (\S+) (\{.*\})$/gm)) results.push({ ...JSON.parse(m[2]), where: 'lab' });
  const reported = new Set(results.map((r) => r.tier));
  const missing = share.tiers.filter((t) => !reported.has(t));
  if (res.exitCode !== 0 && (missing.length > 0 || results.every((r) => r.code === 0 && r.fail === 0))) {
    results.push({ tier: missing.join('+') || 'lab', where: 'lab', code: res.exitCode, tests: 0, pass: 0, fail: 1, skipped: 0, cancelled: 0 });
    process.stderr.write(`${label} failed (exit ${res.exitCode}${res.timedOut ? ', timed out' : ''}): ${res.error ?? ''}\n${res.consoleTail}\n`);
  }
  return results;
}

async function runTiersInLab(labTiers) {
  const { runInLab } = await import(join(root, 'dist', 'lib', 'lab', 'index.js'));
  const { getDefaultImage } = await import(join(root, 'dist', 'lib', 'images', 'index.js'));
  const image = await getDefaultImage({ build: true, log: (l) => process.stderr.write(`[image] ${l}\n`) });
  // The lab has no network: fetch the kernel flavours the compat tier boots here, on the host.
  if (labTiers.includes('linux') && files('linux').some((f) => basename(f).startsWith('compat'))) {
    const { getFlavourKernel, KERNEL_FLAVOURS } = await import(join(root, 'dist', 'lib', 'images', 'flavour.js'));
    for (const f of KERNEL_FLAVOURS) {
      await getFlavourKernel(image, f, { download: true, log: (l) => process.stderr.write(`[image] ${l}\n`) })
        .catch((e) => process.stderr.write(`[image] ${e.message} (the compat tests that need it will fail)\n`));
    }
  }
  const shares = shareLabFiles(labTiers, labCount());
  const how = shares.length > 1 ? `${shares.length} lab boots at once, one host CPU each` : 'one lab boot';
  process.stdout.write(`\n=== tiers ${labTiers.join(', ')}: inside the nested lab (this host's KVM cannot boot Linux), ${how} ===\n`);
  // The first boot's output streams; the others' is kept and printed, whole, once the first ends,
  // so that no two files' lines interleave.
  const kept = shares.map(() => []);
  const outs = shares.map((_, i) => (i === 0 ? process.stdout : { write: (c) => { kept[i].push(c); } }));
  const runs = shares.map((share, i) => {
    if (shares.length > 1) process.stdout.write(`lab ${i + 1}/${shares.length}: ${share.files.join(' ')}\n`);
    // A boot that cannot even start counts as a failure of its tiers; the other boot runs on.
    return runLabShare(runInLab, share, i, shares.length, outs[i]).catch((e) => {
      process.stderr.write(`lab ${i + 1}/${shares.length} could not run: ${e?.stack ?? e}\n`);
      return [{ tier: share.tiers.join('+'), where: 'lab', code: 1, tests: 0, pass: 0, fail: 1, skipped: 0, cancelled: 0 }];
    });
  });
  const all = [];
  for (let i = 0; i < runs.length; i++) {
    const r = await runs[i];
    if (i > 0) process.stdout.write(`\n=== lab ${i + 1}/${shares.length} ===\n${kept[i].join('')}`);
    all.push(...r);
  }
  // One line per tier in the summary, whichever boots ran its files.
  const byTier = new Map();
  for (const r of all) {
    const t = byTier.get(r.tier);
    if (t === undefined) { byTier.set(r.tier, { ...r }); continue; }
    if (r.code !== 0 && t.code === 0) t.code = r.code;
    for (const k of ['tests', 'pass', 'fail', 'skipped', 'cancelled']) t[k] += r[k];
  }
  return [...byTier.values()].sort((a, b) => labTiers.indexOf(a.tier) - labTiers.indexOf(b.tier));
}

const results = [];
const labTiers = [];
for (const tier of tiers) {
  const list = files(tier);
  if (list.length === 0) continue;
  if (tier === 'linux' && !inLab && !(await canBootLinuxDirectly())) {
    // The kvm tier runs again in the lab (small guests under real, emulated SVM), when the
    // filter leaves it any files.
    if (files('kvm').length > 0) labTiers.push('kvm');
    labTiers.push('linux');
    continue;
  }
  process.stdout.write(`\n=== tier ${tier}${inLab ? ' (in the lab)' : ''}: ${list.length} files ===\n`);
  const r = await runNodeTest(tier, list, inLab ? 'lab' : 'host');
  results.push(r);
  if (inLab) process.stdout.write(`NODE-KVM-TIER ${tier} ${JSON.stringify(r)}\n`);
}
if (labTiers.length > 0) results.push(...(await runTiersInLab([...new Set(labTiers)])));

if (!inLab) {
  process.stdout.write('\n=== summary (node ' + process.version + ') ===\n');
  for (const r of results) {
    process.stdout.write(`tier ${r.tier.padEnd(6)} [${r.where}]  tests ${r.tests}  pass ${r.pass}  fail ${r.fail}  skipped ${r.skipped}  cancelled ${r.cancelled}\n`);
  }
  const t = results.reduce((a, r) => ({ tests: a.tests + r.tests, pass: a.pass + r.pass, fail: a.fail + r.fail, skipped: a.skipped + r.skipped, cancelled: a.cancelled + r.cancelled }), { tests: 0, pass: 0, fail: 0, skipped: 0, cancelled: 0 });
  process.stdout.write(`total  tests ${t.tests}  pass ${t.pass}  fail ${t.fail}  skipped ${t.skipped}  cancelled ${t.cancelled}\n`);
}
process.exitCode = results.some((r) => r.code !== 0 || r.fail > 0 || r.cancelled > 0) ? 1 : 0;
