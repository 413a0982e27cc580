// Fetch a Debian kernel package with apt and unpack it (no root needed for dpkg-deb -x, and
// apt-get download needs no lock on the system's package state).
import { spawnSync } from 'node:child_process';
import { readdirSync, existsSync } from 'node:fs';
import { join } from 'node:path';
import { ImageError } from './errors.js';

export interface UnpackedKernel {
  packageName: string; // linux-image-6.1.0-56-amd64
  packageVersion: string; // 6.1.192-2
  release: string; // 6.1.0-56-amd64
  bzImage: string; // <root>/boot/vmlinuz-<release>
  modulesDir: string; // <root>/lib/modules/<release>
}

function run(cmd: string, args: string[], cwd: string | undefined, what: string): { stdout: string; stderr: string; status: number } {
  const r = spawnSync(cmd, args, { cwd, encoding: 'utf8', maxBuffer: 1 << 26 });
  if (r.error) {
    if ((r.error as NodeJS.ErrnoException).code === 'ENOENT') {
      throw new ImageError('ERR_IMAGE_TOOL_MISSING', `${cmd} is not installed (needed to ${what}); this works on Debian/Ubuntu, or pass --kernel and --modules yourself`);
    }
    throw new ImageError('ERR_IMAGE_APT_FAILED', `${cmd} failed to ${what}: ${r.error.message}`, { cause: r.error });
  }
  return { stdout: r.stdout, stderr: r.stderr, status: r.status ?? -1 };
}

/** linux-image-amd64 (a metapackage) -> linux-image-6.1.0-56-amd64 (the one with the files). */
export function resolveKernelPackage(name: string): string {
  if (/^linux-image-\d/.test(name)) return name;
  const r = run('apt-cache', ['depends', name], undefined, `resolve ${name}`);
  const dep = /Depends:\s*(linux-image-\d[^\s]*)/.exec(r.stdout)?.[1];
  if (r.status !== 0 || !dep) {
    throw new ImageError('ERR_IMAGE_PACKAGE_MISSING', `apt does not know ${name} (${(r.stderr || r.stdout).trim().split('\n').pop()}); run \`apt-get update\` or pass --kernel-package linux-image-<version>-amd64`);
  }
  return dep;
}

/** apt-get download + dpkg-deb -x into `workDir` (which the caller removes). */
export function downloadKernel(metaOrVersioned: string, workDir: string): UnpackedKernel {
  const pkg = resolveKernelPackage(metaOrVersioned);
  const dl = run('apt-get', ['download', '-q', pkg], workDir, `download ${pkg}`);
  const debs = readdirSync(workDir).filter((f) => f.endsWith('.deb'));
  if (dl.status !== 0 || debs.length === 0) {
    const msg = dl.stderr.trim().split('\n').filter((l) => l.startsWith('E:')).join(' ') || dl.stderr.trim();
    const offline = /resolve|Temporary failure|Could not connect|Network is unreachable|Failed to fetch/i.test(msg);
    if (/Unable to locate|no installation candidate|Can't select/i.test(msg)) {
      throw new ImageError('ERR_IMAGE_PACKAGE_MISSING', `apt has no package ${pkg}: ${msg}; run \`apt-get update\` or choose another --kernel-package`);
    }
    throw new ImageError('ERR_IMAGE_APT_FAILED', offline
      ? `cannot download ${pkg}: no network to the apt mirror (${msg}); connect, or pass --kernel and --modules from a local kernel`
      : `apt-get download ${pkg} failed: ${msg}`);
  }
  const deb = join(workDir, debs[0]!);
  const root = join(workDir, 'root');
  const x = run('dpkg-deb', ['-x', deb, root], workDir, `unpack ${deb}`);
  if (x.status !== 0) throw new ImageError('ERR_IMAGE_APT_FAILED', `dpkg-deb -x ${deb} failed: ${x.stderr.trim()}`);
  const version = run('dpkg-deb', ['-f', deb, 'Version'], workDir, 'read the package version').stdout.trim();
  const boot = join(root, 'boot');
  const vmlinuz = existsSync(boot) ? readdirSync(boot).find((f) => f.startsWith('vmlinuz-')) : undefined;
  if (!vmlinuz) throw new ImageError('ERR_IMAGE_NOT_BZIMAGE', `${pkg} contains no boot/vmlinuz-*; choose a linux-image-* package`);
  const release = vmlinuz.slice('vmlinuz-'.length);
  const modulesDir = join(root, 'lib', 'modules', release);
  if (!existsSync(modulesDir)) throw new ImageError('ERR_IMAGE_MODULE_MISSING', `${pkg} has no lib/modules/${release}`);
  return { packageName: pkg, packageVersion: version, release, bzImage: join(boot, vmlinuz), modulesDir };
}
