// Assembles the test guests (test/guests/*.S) with the system toolchain into flat binaries,
// cached under os.tmpdir() by a hash of the sources, so tests and benches need no prebuilt
// blobs. `gcc -c` runs the C preprocessor (guests include guest.h), `ld --oformat=binary`
// links the image at GUEST_LOAD_ADDR.
import { createHash } from 'node:crypto';
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, renameSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

/** Every guest is linked and loaded here, entered in real mode at CS:IP = 0:GUEST_LOAD_ADDR. */
export const GUEST_LOAD_ADDR = 0x8000;

export const GUEST_NAMES = ['real', 'pm32', 'long64', 'timer', 'smp', 'exit-loop', 'idle', 'dirty'] as const;
export type GuestName = (typeof GUEST_NAMES)[number];

/** Ports of the guests' I/O contract (see test/guests/guest.h). */
export const PORT = {
  CONSOLE: 0x3f8,
  PARAM: 0xe0,
  ECHO: 0xe4,
  OUTS: 0xfa,
  INS: 0xfb,
  CSUM: 0xf8,
  REPORT: 0xe8,
  CREG: 0xec,
  TICK: 0xf0,
  APIC_ID: 0xfc,
  LOOP: 0xfd,
} as const;

/** Width of the bus window each port needs (the widest access the guests make there). */
export const PORT_WINDOW: Record<keyof typeof PORT, number> = {
  CONSOLE: 1, PARAM: 4, ECHO: 4, OUTS: 1, INS: 1, CSUM: 2, REPORT: 4, CREG: 4, TICK: 4, APIC_ID: 1, LOOP: 1,
};

/** The repository's test/guests directory (works from test/guests and dist/test/guests). */
export function guestSourceDir(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (let i = 0; i < 6; i++) {
    if (existsSync(join(dir, 'package.json')) && existsSync(join(dir, 'test', 'guests', 'guest.h'))) {
      return join(dir, 'test', 'guests');
    }
    dir = dirname(dir);
  }
  throw new Error('cannot find test/guests (guest sources) above ' + fileURLToPath(import.meta.url));
}

/** Why guests cannot be built here, or undefined when gcc and ld are available. */
export function toolchainMissing(): string | undefined {
  for (const tool of ['gcc', 'ld']) {
    try {
      execFileSync(tool, ['--version'], { stdio: 'ignore' });
    } catch {
      return `${tool} not found: install build-essential (gcc, binutils) to assemble the test guests`;
    }
  }
  return undefined;
}

export function cacheDir(): string {
  return join(tmpdir(), 'node-kvm-guests');
}

const memo = new Map<GuestName, Uint8Array>();

/** Where the image of `name` is cached: the name of the file carries a hash of its sources. */
export function guestImagePath(name: GuestName): string {
  const src = guestSourceDir();
  const key = createHash('sha256')
    .update(readFileSync(join(src, `${name}.S`))).update('\0')
    .update(readFileSync(join(src, 'guest.h'))).update('\0')
    .update(String(GUEST_LOAD_ADDR))
    .digest('hex').slice(0, 16);
  return join(cacheDir(), `${name}-${key}.bin`);
}

/** Assemble `name` (or take it from the cache) and return the path of the flat image. */
export function ensureGuestImage(name: GuestName): string {
  const out = guestImagePath(name);
  if (existsSync(out)) return out;
  const src = guestSourceDir();
  mkdirSync(cacheDir(), { recursive: true });
  const work = mkdtempSync(join(cacheDir(), `${name}-build-`));
  try {
    const obj = join(work, `${name}.o`);
    const bin = join(work, `${name}.bin`);
    const opts = { stdio: ['ignore', 'ignore', 'pipe'] as ('ignore' | 'pipe')[] };
    try {
      execFileSync('gcc', ['-c', '-I', src, '-o', obj, join(src, `${name}.S`)], opts);
      execFileSync('ld', ['-m', 'elf_x86_64', `-Ttext=0x${GUEST_LOAD_ADDR.toString(16)}`, '--oformat=binary',
        '-e', '_start', '-o', bin, obj], opts);
    } catch (e) {
      const stderr = (e as { stderr?: Buffer }).stderr?.toString() ?? '';
      throw new Error(`cannot assemble test guest ${name}: ${toolchainMissing() ?? stderr.trim()}`, { cause: e });
    }
    // Atomic publish: concurrent test files may build the same guest.
    renameSync(bin, out);
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
  return out;
}

/** The flat image of `name`, assembled on first use. */
export function buildGuest(name: GuestName): Uint8Array {
  let bytes = memo.get(name);
  if (bytes === undefined) {
    bytes = new Uint8Array(readFileSync(ensureGuestImage(name)));
    memo.set(name, bytes);
  }
  return bytes;
}

/** How `buildGuestFile` links a source: a flat binary, or an ELF32 (Multiboot kernels). */
export interface GuestFileOptions {
  /** Address the text is linked at (-Ttext). */
  linkAddress: number;
  /** 'flat': raw bytes (ld --oformat=binary); 'elf32': an i386 ELF executable. */
  format: 'flat' | 'elf32';
}

/**
 * Assemble any test/guests/<file>.S (not only the GUEST_NAMES contract guests) and return the
 * path of the cached image. The cache key covers every .S and .h in test/guests, so sources
 * that #include one another are rebuilt when any of them changes.
 */
export function buildGuestFile(file: string, opts: GuestFileOptions): string {
  if (!/^[a-z0-9-]+\.S$/.test(file)) throw new Error(`guest source name ${JSON.stringify(file)} is not <name>.S`);
  const src = guestSourceDir();
  const name = file.slice(0, -2);
  const hash = createHash('sha256');
  for (const f of readdirSync(src).filter((n) => n.endsWith('.S') || n.endsWith('.h')).sort()) {
    hash.update(f).update('\0').update(readFileSync(join(src, f))).update('\0');
  }
  hash.update(`${opts.format}@${opts.linkAddress}`);
  const ext = opts.format === 'flat' ? 'bin' : 'elf';
  const out = join(cacheDir(), `${name}-${hash.digest('hex').slice(0, 16)}.${ext}`);
  if (existsSync(out)) return out;
  mkdirSync(cacheDir(), { recursive: true });
  const work = mkdtempSync(join(cacheDir(), `${name}-build-`));
  try {
    const obj = join(work, `${name}.o`);
    const img = join(work, `${name}.${ext}`);
    const stdio = ['ignore', 'ignore', 'pipe'] as ('ignore' | 'pipe')[];
    const text = `-Ttext=0x${opts.linkAddress.toString(16)}`;
    try {
      if (opts.format === 'flat') {
        execFileSync('gcc', ['-c', '-I', src, '-o', obj, join(src, file)], { stdio });
        execFileSync('ld', ['-m', 'elf_x86_64', text, '--oformat=binary', '-e', '_start', '-o', img, obj], { stdio });
      } else {
        // -n: no page alignment of the text in the file, so a Multiboot header near the start
        // of .text lies well inside the first 8 KiB of the file.
        execFileSync('gcc', ['-m32', '-c', '-I', src, '-o', obj, join(src, file)], { stdio });
        execFileSync('ld', ['-m', 'elf_i386', '-n', '--build-id=none', text, '-e', '_start', '-o', img, obj], { stdio });
      }
    } catch (e) {
      const stderr = (e as { stderr?: Buffer }).stderr?.toString() ?? '';
      throw new Error(`cannot assemble test guest ${file}: ${toolchainMissing() ?? stderr.trim()}`, { cause: e });
    }
    renameSync(img, out);
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
  return out;
}
