// Helpers for linux-tier tests: the default image, a shell session over the serial console,
// and an initrd with extra files appended as a second archive.
import { createHash } from 'node:crypto';
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { gzipSync } from 'node:zlib';
import { getDefaultImage, GUEST_PROMPT, type Image } from '../../lib/images/index.js';
import { CpioWriter } from '../../lib/images/cpio.js';
import type { Machine } from '../../lib/machine/index.js';

/** Console timeouts inside the nested lab, where an L2 Linux takes 8-16 s to userspace. */
export const BOOT_TIMEOUT_MS = 120_000;
export const COMMAND_TIMEOUT_MS = 60_000;

/** The default image, built if missing (size-only verification inside the lab: hashing costs seconds under TCG). */
export function defaultImage(): Promise<Image> {
  return getDefaultImage({ build: true, verify: process.env.NODE_KVM_LAB === '1' ? 'size' : 'full' });
}

export function sha256Hex(data: Uint8Array): string {
  return createHash('sha256').update(data).digest('hex');
}

let sequence = 0;

export interface ShellResult {
  /** Output lines of the command, CR stripped, without the echoed command line. */
  output: string;
  status: number;
}

/**
 * Run `command` in the guest's console shell and return its output and exit status. The
 * markers are split by quotes in the typed text, so only the shell's output matches them.
 */
export async function shell(m: Machine, command: string, timeout = COMMAND_TIMEOUT_MS): Promise<ShellResult> {
  const id = ++sequence;
  const begin = `@@B${id}@@`;
  const end = `@@E${id}:`;
  m.console.write(`echo '${begin.slice(0, 3)}''${begin.slice(3)}'; ${command}; echo "${end.slice(0, 3)}""${end.slice(3)}$?@@"\n`);
  const reply = new RegExp(`${escape(begin)}\\r?\\n([\\s\\S]*?)${escape(end)}(\\d+)@@`);
  const match = reply.exec(await m.console.waitFor(reply, { timeout }))!;
  await m.console.waitFor(GUEST_PROMPT, { timeout });
  return { output: match[1]!.replace(/\r/g, ''), status: Number(match[2]) };
}

function escape(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}

/**
 * A copy of `baseInitrd` followed by a gzip newc archive holding `files`: Linux unpacks
 * concatenated archives into one initramfs. Written to a temp file; `cleanup()` removes it.
 */
export function initrdWithFiles(baseInitrd: string, files: Record<string, Uint8Array>): { path: string; cleanup: () => void } {
  const cpio = new CpioWriter();
  for (const [name, data] of Object.entries(files)) cpio.file(name, data);
  const base = readFileSync(baseInitrd);
  // gzip level 1: the payload is random and does not compress; keep the host side fast.
  const extra = gzipSync(cpio.finish(), { level: 1 });
  const pad = Buffer.alloc((4 - (base.length % 4)) % 4);
  const dir = mkdtempSync(join(tmpdir(), 'node-kvm-initrd-'));
  const path = join(dir, 'initrd.cpio.gz');
  writeFileSync(path, Buffer.concat([base, pad, extra]));
  return { path, cleanup: () => rmSync(dir, { recursive: true, force: true }) };
}

/**
 * test/linux/tools/udp-echo.c built for the guest (freestanding, static, a few KiB: it goes in
 * with bootVm's `files`, over the console), cached under os.tmpdir() by a hash of its source.
 * `udp-echo serve PORT COUNT` echoes COUNT datagrams; `udp-echo ask ADDR PORT TEXT` prints the
 * echo of TEXT. Busybox's nc has no UDP.
 */
export function udpEchoTool(): Uint8Array {
  let dir = dirname(fileURLToPath(import.meta.url));
  while (!existsSync(join(dir, 'test', 'linux', 'tools', 'udp-echo.c'))) {
    const up = dirname(dir);
    if (up === dir) throw new Error(`cannot find test/linux/tools/udp-echo.c above ${fileURLToPath(import.meta.url)}`);
    dir = up;
  }
  const src = join(dir, 'test', 'linux', 'tools', 'udp-echo.c');
  const flags = ['-static', '-nostdlib', '-Os', '-fno-stack-protector', '-fno-asynchronous-unwind-tables', '-fno-pie', '-no-pie', '-fno-builtin', '-Wl,--build-id=none', '-s'];
  const key = createHash('sha256').update(readFileSync(src)).update(flags.join(' ')).digest('hex').slice(0, 16);
  const cache = join(tmpdir(), 'node-kvm-guests');
  const out = join(cache, `udp-echo-${key}`);
  if (!existsSync(out)) {
    mkdirSync(cache, { recursive: true });
    const work = mkdtempSync(join(cache, 'udp-echo-build-'));
    try {
      execFileSync('gcc', [...flags, '-o', join(work, 'udp-echo'), src], { stdio: ['ignore', 'ignore', 'pipe'] });
      renameSync(join(work, 'udp-echo'), out); // atomic: test files may build it at once
    } finally {
      rmSync(work, { recursive: true, force: true });
    }
  }
  return new Uint8Array(readFileSync(out));
}
