// Run bin/node-kvm.js as a child process, and small kernels to feed it, for CLI tests.
import { spawn } from 'node:child_process';
import { existsSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { makeElf, multibootHeader } from '../unit/boot-fixtures.js';

/** The repository root (works from test/helpers and dist/test/helpers). */
export function repoRoot(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (let i = 0; i < 6; i++) {
    if (existsSync(join(dir, 'package.json')) && existsSync(join(dir, 'bin', 'node-kvm.js'))) return dir;
    dir = dirname(dir);
  }
  throw new Error(`cannot find the repository root above ${fileURLToPath(import.meta.url)}`);
}

export interface CliResult {
  status: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
  ms: number;
}

/** `node bin/node-kvm.js ...args`, killed after `killAfterMs` (then status is null). */
export function runCli(args: string[], opts: { killAfterMs?: number; env?: NodeJS.ProcessEnv } = {}): Promise<CliResult> {
  const t0 = Date.now();
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [join(repoRoot(), 'bin', 'node-kvm.js'), ...args],
      { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, NODE_TEST_CONTEXT: undefined, ...opts.env } });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => { stdout += d; });
    child.stderr.on('data', (d) => { stderr += d; });
    const timer = setTimeout(() => child.kill('SIGKILL'), opts.killAfterMs ?? 60_000);
    child.on('close', (status, signal) => {
      clearTimeout(timer);
      resolve({ status, signal, stdout, stderr, ms: Date.now() - t0 });
    });
  });
}

/**
 * A Multiboot v1 ELF kernel that never ends: `jmp $` (or `hlt` with interrupts off) at its
 * entry. No Linux, so the CLI boots it directly on any KVM.
 */
export function writeEndlessKernel(path: string, how: 'spin' | 'hlt' = 'spin'): string {
  const text = new Uint8Array(0x1800);
  text.set(multibootHeader(0x3), 0x40);
  text.set(how === 'spin' ? [0xeb, 0xfe] : [0xfa, 0xf4, 0xeb, 0xfc], 0x100);
  writeFileSync(path, makeElf({ elfClass: 32, entry: 0x100100, segments: [{ paddr: 0x100000, data: text, memsz: 0x3000 }] }));
  return path;
}
