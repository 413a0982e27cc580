// A scope for one test: the VMs and topologies it starts are closed at the end, and when the
// test fails, the error gets every VM's console tail and the name of a directory holding the
// full console logs and the pcaps. The directory is $NODE_KVM_ARTIFACTS (or
// <tmpdir>/node-kvm-artifacts) / <test name>-<timestamp>; it is removed after a passing test
// unless NODE_KVM_KEEP_ARTIFACTS=1.
import { mkdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test, type TestContext } from 'node:test';
import { topology, type Topology, type TopologySpec } from './topology.js';
import { bootVm, type BootVmOptions, type TestVm } from './vm.js';
import type { ForkOptions, VmTemplate } from './template.js';
import { NodeKvmError } from '../errors.js';
import { debugEnabled, holdForDebug } from './debug.js';
import { checkOptions, keysOf } from '../options-check.js';

interface Tracked {
  close(): Promise<void>;
  vms(): TestVm[];
  saveArtifacts(dir: string): string[];
  tails(): Array<[string, string]>;
}

/** Root directory for artifacts. */
export function artifactsRoot(): string {
  return process.env.NODE_KVM_ARTIFACTS ?? join(tmpdir(), 'node-kvm-artifacts');
}

function slug(name: string): string {
  return name.replace(/[^A-Za-z0-9._-]+/g, '-').replace(/^-+|-+$/g, '').slice(0, 80) || 'test';
}

/**
 * The VMs and topologies of one test: closed when the test ends; on failure their console logs
 * and pcaps are kept in an artifact directory named in the error.
 */
export class VmScope implements AsyncDisposable {
  private readonly tracked: Tracked[] = [];
  private dirPath: string | undefined;
  private readonly stamp = new Date().toISOString().replace(/[:.]/g, '-');

  constructor(
    /** The test's name (used for the artifact directory). */
    readonly name: string,
  ) {}

  /** This test's artifact directory (created on first use). */
  get dir(): string {
    if (this.dirPath === undefined) {
      this.dirPath = join(artifactsRoot(), `${slug(this.name)}-${this.stamp}`);
      mkdirSync(this.dirPath, { recursive: true });
    }
    return this.dirPath;
  }

  /** bootVm(), closed with the scope; name defaults to vm<N>. */
  async bootVm(opts: BootVmOptions = {}): Promise<TestVm> {
    return this.track(await bootVm({ ...opts, name: opts.name ?? `vm${this.tracked.length + 1}` }));
  }

  /** template.fork(), closed with the scope; name defaults to the test's name and a number. */
  async fork(template: VmTemplate, opts: ForkOptions = {}): Promise<TestVm> {
    return this.track(await template.fork({ ...opts, name: opts.name ?? `${slug(this.name)}-${this.tracked.length + 1}` }));
  }

  /** The VMs this scope started and still holds, in order. */
  get vms(): readonly TestVm[] {
    return this.tracked.flatMap((t) => t.vms());
  }

  private track(vm: TestVm): TestVm {
    this.tracked.push({ close: () => vm.close(), saveArtifacts: (d) => vm.saveArtifacts(d), tails: () => [[vm.name, vm.tail(1500)]], vms: () => [vm] });
    return vm;
  }

  /** topology(), closed with the scope; pcaps with relative names go to the artifact directory. */
  async topology(spec: TopologySpec): Promise<Topology> {
    const topo = await topology({ dir: this.dir, ...spec });
    this.tracked.push({
      close: () => topo.close(),
      saveArtifacts: (d) => topo.saveArtifacts(d),
      tails: () => Object.values(topo.vms).map((v) => [v.name, v.tail(1500)]),
      vms: () => Object.values(topo.vms),
    });
    return topo;
  }

  /**
   * Save the artifacts and return `err` with the console tails and the directory appended to
   * its message (and stack, which is what test reporters print).
   */
  fail(err: unknown): unknown {
    const dir = this.dir;
    const files: string[] = [];
    for (const t of this.tracked) {
      try {
        files.push(...t.saveArtifacts(dir));
      } catch (e) {
        files.push(`(could not save: ${(e as Error).message})`);
      }
    }
    const tails = this.tracked.flatMap((t) => t.tails()).map(([n, tail]) => `--- console tail of ${n} ---\n${tail}`).join('\n');
    const extra = `\nnode-kvm artifacts (console logs, pcaps): ${dir}\n${tails}`;
    if (err instanceof Error) {
      const before = err.message;
      try {
        err.message = `${before}${extra}`;
        if (err.stack !== undefined) err.stack = err.stack.includes(before) ? err.stack.replace(before, err.message) : `${err.stack}${extra}`;
      } catch {
        return new Error(`${String(err)}${extra}`, { cause: err });
      }
      return err;
    }
    return new Error(`${String(err)}${extra}`, { cause: err });
  }

  /** Close everything; remove the artifact directory unless the test failed or keeping is asked. */
  async close(failed = false): Promise<void> {
    await Promise.allSettled(this.tracked.map((t) => t.close()));
    this.tracked.length = 0;
    if (!failed && this.dirPath !== undefined && process.env.NODE_KVM_KEEP_ARTIFACTS !== '1') {
      rmSync(this.dirPath, { recursive: true, force: true });
    }
  }

  /** Same as close(), for `await using`. */
  async [Symbol.asyncDispose](): Promise<void> {
    await this.close();
  }
}

/**
 * Run `fn` in a scope (any test framework): artifacts on failure, everything closed after. With
 * NODE_KVM_DEBUG=1 a failure first keeps the scope's VMs for `node-kvm attach` (printed on
 * stderr) until the last session detaches or NODE_KVM_DEBUG_TIMEOUT seconds pass.
 */
export async function withVms<T>(name: string, fn: (scope: VmScope) => Promise<T>): Promise<T> {
  const scope = new VmScope(name);
  let failed = false;
  try {
    return await fn(scope);
  } catch (e) {
    failed = true;
    const err = scope.fail(e);
    if (debugEnabled()) await holdForDebug(name, scope.vms, (text) => process.stderr.write(text));
    throw err;
  } finally {
    await scope.close(failed);
  }
}

/** A test's timeout: none while NODE_KVM_DEBUG=1 (a person is debugging it), else `ms` or 600 s. */
function testTimeout(ms: number | undefined): number {
  return debugEnabled() ? Infinity : ms ?? 600_000;
}

/** Options of vmTest(). */
export interface VmTestOptions {
  /** Test timeout in ms (default 600 s: guests boot slowly under nested emulation). */
  timeout?: number;
  /** node:test concurrency of the test. */
  concurrency?: number;
}

/** Options of vmTest() with a template: the test body gets a fork of it. */
export interface VmTemplateTestOptions extends VmTestOptions {
  /** The template the test's VM is forked from. */
  template: VmTemplate;
  /** Options of the fork (its NICs, a name…). */
  fork?: Omit<ForkOptions, 't'>;
}

/**
 * A node:test test whose body gets a VmScope: `vmTest(name, async (scope, t) => …, options?)`;
 * or, with a template, a fork of it (closed after the test): `vmTest(name, { template }, async
 * (vm, scope, t) => …)`. On failure the error names the artifact directory and holds the console
 * tails.
 */
export function vmTest(name: string, fn: (scope: VmScope, t: TestContext) => Promise<void>, options?: VmTestOptions): Promise<void>;
export function vmTest(name: string, options: VmTemplateTestOptions, fn: (vm: TestVm, scope: VmScope, t: TestContext) => Promise<void>): Promise<void>;
export function vmTest(
  name: string,
  a: ((scope: VmScope, t: TestContext) => Promise<void>) | VmTemplateTestOptions,
  b?: VmTestOptions | ((vm: TestVm, scope: VmScope, t: TestContext) => Promise<void>),
): Promise<void> {
  if (typeof a === 'function') {
    const options = (b ?? {}) as VmTestOptions;
    checkOptions('vmTest', options, keysOf<VmTestOptions>({ timeout: true, concurrency: true }));
    return test(name, { timeout: testTimeout(options.timeout), concurrency: options.concurrency }, (t) => withVms(name, (scope) => a(scope, t)));
  }
  checkOptions('vmTest', a, keysOf<VmTemplateTestOptions>({ timeout: true, concurrency: true, template: true, fork: true }));
  if (a?.template === undefined || typeof a.template.fork !== 'function') throw new NodeKvmError('ERR_INVALID_ARG', 'vmTest: options.template must be a VmTemplate');
  if (typeof b !== 'function') throw new NodeKvmError('ERR_INVALID_ARG', 'vmTest: the last argument must be the test function');
  const { template, fork } = a;
  return test(name, { timeout: testTimeout(a.timeout), concurrency: a.concurrency }, (t) => withVms(name, async (scope) => b(await scope.fork(template, fork), scope, t)));
}
