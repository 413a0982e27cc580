// Other flavours (rt, cloud) of the default image's Debian kernel, same package version: the
// bzImage only, fetched with apt-get download once and cached beside the images (in a dot
// directory, so `node-kvm image list` does not take it for an image). They boot with the
// default image's initramfs; its modules belong to the default flavour and need not load.
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, copyFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { cacheRoot, writeAtomically } from './cache.js';
import { ImageError } from './errors.js';
import type { Image } from './manifest.js';
import { sha256 } from './manifest.js';

export type KernelFlavour = 'rt' | 'cloud';
export const KERNEL_FLAVOURS: readonly KernelFlavour[] = ['rt', 'cloud'];

export interface FlavourKernel {
  flavour: KernelFlavour;
  packageName: string; // linux-image-6.1.0-57-rt-amd64
  packageVersion: string; // 6.1.192-3, the default image's
  release: string; // 6.1.0-57-rt-amd64
  bzImage: string; // path in the cache
}

/** linux-image-6.1.0-57-amd64 -> linux-image-6.1.0-57-rt-amd64. */
export function flavourPackageName(defaultPackage: string, flavour: KernelFlavour): string {
  const m = /^linux-image-(\d[\w.+~]*-\d+)-amd64$/.exec(defaultPackage);
  if (!m || !KERNEL_FLAVOURS.includes(flavour)) {
    throw new ImageError('ERR_IMAGE_PACKAGE_MISSING',
      `cannot derive the ${flavour} flavour of ${defaultPackage}: expected linux-image-<abi>-amd64 and a flavour of ${KERNEL_FLAVOURS.join(', ')}`);
  }
  return `linux-image-${m[1]}-${flavour}-amd64`;
}

function flavourDir(packageName: string, packageVersion: string): string {
  return join(cacheRoot(), '.kernels', `${packageName}_${packageVersion.replace(/[^\w.+~-]/g, '_')}`);
}

interface Record { packageName: string; packageVersion: string; release: string; size: number; sha256: string }

function readCached(dir: string): Record | undefined {
  try {
    const r = JSON.parse(readFileSync(join(dir, 'kernel.json'), 'utf8')) as Record;
    return statSync(join(dir, 'bzImage')).size === r.size ? r : undefined;
  } catch {
    return undefined;
  }
}

/**
 * The `flavour` kernel of the same package version as `base`'s (an image built from apt).
 * `download: false` only reads the cache (inside the nested lab, which has no network).
 */
export async function getFlavourKernel(
  base: Image, flavour: KernelFlavour, opts: { download?: boolean; log?: (line: string) => void } = {},
): Promise<FlavourKernel> {
  const k = base.manifest.kernel;
  if (k.source !== 'apt' || k.package === undefined || k.packageVersion === undefined) {
    throw new ImageError('ERR_IMAGE_PACKAGE_MISSING', `image "${base.name}" was built from a kernel file, not an apt package: no flavours to match it`);
  }
  const packageName = flavourPackageName(k.package, flavour);
  const dir = flavourDir(packageName, k.packageVersion);
  let rec = readCached(dir);
  if (rec === undefined) {
    if (!opts.download) {
      throw new ImageError('ERR_IMAGE_NOT_FOUND',
        `${packageName} ${k.packageVersion} is not in ${dir}; fetch it where apt has network (the test runner does so on the host before the lab starts)`);
    }
    opts.log?.(`downloading ${packageName}=${k.packageVersion} with apt-get`);
    rec = await download(packageName, k.packageVersion, dir);
  }
  return { flavour, packageName, packageVersion: rec.packageVersion, release: rec.release, bzImage: join(dir, 'bzImage') };
}

function run(cmd: string, args: string[], cwd: string): { status: number; stderr: string } {
  const r = spawnSync(cmd, args, { cwd, encoding: 'utf8', maxBuffer: 1 << 24 });
  if (r.error) {
    const missing = (r.error as NodeJS.ErrnoException).code === 'ENOENT';
    throw new ImageError(missing ? 'ERR_IMAGE_TOOL_MISSING' : 'ERR_IMAGE_APT_FAILED', `${cmd}: ${r.error.message}`, { cause: r.error });
  }
  return { status: r.status ?? -1, stderr: r.stderr };
}

async function download(packageName: string, packageVersion: string, dir: string): Promise<Record> {
  const work = mkdtempSync(join(tmpdir(), 'node-kvm-flavour-'));
  try {
    const dl = run('apt-get', ['download', '-q', `${packageName}=${packageVersion}`], work);
    const deb = readdirSync(work).find((f) => f.endsWith('.deb'));
    if (dl.status !== 0 || deb === undefined) {
      const msg = dl.stderr.trim().split('\n').filter((l) => l.startsWith('E:')).join(' ') || dl.stderr.trim();
      throw new ImageError(/Unable to locate|not found|Can't select/i.test(msg) ? 'ERR_IMAGE_PACKAGE_MISSING' : 'ERR_IMAGE_APT_FAILED',
        `apt-get download ${packageName}=${packageVersion} failed: ${msg}; run \`apt-get update\`, or connect to the apt mirror`);
    }
    // Only boot/vmlinuz-* from the package's data (the modules are not needed).
    const root = join(work, 'root');
    const x = run('sh', ['-c', 'mkdir -p "$2" && dpkg-deb --fsys-tarfile "$1" | tar -x -C "$2" --wildcards "./boot/vmlinuz-*"', 'sh', join(work, deb), root], work);
    const boot = join(root, 'boot');
    const vmlinuz = existsSync(boot) ? readdirSync(boot).find((f) => f.startsWith('vmlinuz-')) : undefined;
    if (x.status !== 0 || vmlinuz === undefined) {
      throw new ImageError('ERR_IMAGE_NOT_BZIMAGE', `${deb} has no boot/vmlinuz-* (${x.stderr.trim()})`);
    }
    const bytes = readFileSync(join(boot, vmlinuz));
    const rec: Record = { packageName, packageVersion, release: vmlinuz.slice('vmlinuz-'.length), size: bytes.length, sha256: sha256(bytes) };
    await writeAtomically(dir, (tmp) => {
      copyFileSync(join(boot, vmlinuz), join(tmp, 'bzImage'));
      writeFileSync(join(tmp, 'kernel.json'), JSON.stringify(rec, null, 2) + '\n');
    });
    return rec;
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
}
