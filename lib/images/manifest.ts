// manifest.json: what an image directory holds and the sha256 of each file, so a partial or
// corrupted cache is detected (and rebuilt) instead of booted.
import { createHash } from 'node:crypto';
import { existsSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';

export const MANIFEST_FORMAT = 1;
export const IMAGE_FILES = { kernel: 'bzImage', vmlinux: 'vmlinux', initrd: 'initramfs.cpio.gz' } as const;

/** One file of an image, as the manifest records it. */
export interface FileRecord {
  /** Hex sha256 of its bytes. */
  sha256: string;
  /** Bytes. */
  size: number;
}

/** manifest.json of an image: what it was built from, and a hash of each file. */
export interface ImageManifest {
  /** Manifest format (1). */
  formatVersion: number;
  /** Image name. */
  name: string;
  /** When it was built (ISO 8601). */
  createdAt: string;
  /** Where the kernel came from. */
  kernel: {
    /** Downloaded with apt, or given as a file. */
    source: 'apt' | 'file';
    /** The versioned package, e.g. linux-image-6.1.0-56-amd64. */
    package?: string;
    /** The package version, e.g. 6.1.192-2. */
    packageVersion?: string;
    /** uname -r of the kernel, e.g. 6.1.0-56-amd64. */
    release: string;
    /** Payload compression of the bzImage. */
    compression: string;
  };
  /** The busybox the initramfs carries. */
  busybox: {
    /** Its version string. */
    version: string;
  };
  /** Kernel modules /init loads, in insmod order. */
  modules: string[];
  /** Guest paths added with `add` (and the libraries they need). */
  added: string[];
  /** Each file of the image directory by name. */
  files: Record<string, FileRecord>;
  /** sha256 of the profile (init script, modules, extra files) the image was built from. */
  profileSha256?: string;
  /** Guest path of the exec-channel agent (lib/images/agent.ts), when the image has one. */
  agent?: string;
}

/** A verified image on disk. */
export interface Image {
  /** Image name. */
  name: string;
  /** Its directory. */
  dir: string;
  /** Path of the bzImage. */
  kernel: string;
  /** Path of the uncompressed ELF kernel (PVH entry), faster to boot. */
  vmlinux: string;
  /** Path of the gzip newc initramfs. */
  initrd: string;
  /** Its manifest. */
  manifest: ImageManifest;
}

export const sha256 = (data: Uint8Array): string => createHash('sha256').update(data).digest('hex');

/** What verifyImage() found: the image, or why it is not usable. */
export type VerifyResult =
  | {
    /** It verified. */ ok: true;
    /** The image. */ image: Image;
  }
  | {
    /** It did not. */ ok: false;
    /** Why. */ reason: string;
  };

/**
 * How hard to check: 'full' hashes every file (~70 MiB; 0.3 s on a host, ~3 s inside the lab's
 * TCG L1), 'size' only checks presence and sizes — for callers that verified fully already
 * (e.g. the test runner on the host before it starts the lab).
 */
export type VerifyLevel = 'full' | 'size';

/** Check manifest + every file's size and (level 'full') sha256. Never throws for a bad cache: says why. */
export function verifyImage(dir: string, level: VerifyLevel = 'full'): VerifyResult {
  const mpath = join(dir, 'manifest.json');
  if (!existsSync(mpath)) return { ok: false, reason: `${mpath} missing` };
  let m: ImageManifest;
  try {
    m = JSON.parse(readFileSync(mpath, 'utf8')) as ImageManifest;
  } catch (e) {
    return { ok: false, reason: `${mpath} unreadable: ${(e as Error).message}` };
  }
  if (m.formatVersion !== MANIFEST_FORMAT) return { ok: false, reason: `manifest format ${String(m.formatVersion)} (want ${MANIFEST_FORMAT})` };
  if (typeof m.files !== 'object' || m.files === null) return { ok: false, reason: 'manifest lists no files' };
  for (const f of Object.values(IMAGE_FILES)) {
    const rec = m.files[f];
    const p = join(dir, f);
    if (!rec) return { ok: false, reason: `manifest does not list ${f}` };
    if (!existsSync(p)) return { ok: false, reason: `${p} missing` };
    if (statSync(p).size !== rec.size) return { ok: false, reason: `${p} has size ${statSync(p).size}, manifest says ${rec.size}` };
    if (level === 'full' && sha256(readFileSync(p)) !== rec.sha256) return { ok: false, reason: `${p} sha256 mismatch` };
  }
  return {
    ok: true,
    image: { name: m.name, dir, kernel: join(dir, IMAGE_FILES.kernel), vmlinux: join(dir, IMAGE_FILES.vmlinux), initrd: join(dir, IMAGE_FILES.initrd), manifest: m },
  };
}
