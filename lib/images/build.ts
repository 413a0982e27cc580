// buildImage(): Debian kernel (via apt, or given files) + busybox initramfs -> a cached image
// directory with bzImage, vmlinux, initramfs.cpio.gz and manifest.json.
import { readUserFile } from '../user-file.js';
import { mkdtempSync, readFileSync, rmSync, writeFileSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { extractVmlinux } from './bzimage.js';
import { writeAtomically, imageDir, cachedImageNames, cacheRoot } from './cache.js';
import { ImageError, rethrowDiskFull } from './errors.js';
import { guestInit, GUEST_MODULES, GUEST_OPTIONAL_MODULES, SHELL_SCRIPT, UDHCPC_SCRIPT } from './guest-init.js';
import { downloadKernel } from './kernel-package.js';
import { IMAGE_FILES, MANIFEST_FORMAT, sha256, verifyImage, type Image, type ImageManifest, type VerifyLevel } from './manifest.js';
import { ModuleTree, assertModulesMatch } from './modules.js';
import { addBusybox, addHostFile, addModules, baseRootFs } from './rootfs.js';
import { checkOptions, keysOf } from '../options-check.js';
import { AGENT_GUEST_PATH, agentSource, buildAgent } from './agent.js';

export const DEFAULT_KERNEL_PACKAGE = 'linux-image-amd64';
export const DEFAULT_BUSYBOX = '/bin/busybox';

/** Options of buildImage(). */
export interface BuildImageOptions {
  /** Image name in the cache (default "default"). */
  name?: string;
  /** Write the image here instead of the cache. */
  out?: string;
  /** apt package providing kernel + modules (default linux-image-amd64). */
  kernelPackage?: string;
  /** Use this bzImage instead of downloading (then `modules` or /lib/modules/<release>). */
  kernel?: string;
  /** /lib/modules/<release> directory matching `kernel`. */
  modules?: string;
  /** Static busybox (default /bin/busybox from busybox-static). */
  busybox?: string;
  /** HOSTPATH:GUESTPATH files to include (ELF executables bring their libraries). */
  add?: string[];
  /** Progress lines. */
  log?: (line: string) => void;
  /** Image profile: modules to load (with dependencies), the /init text, extra files. */
  profile?: ImageProfile;
}

/** What goes into an initramfs besides busybox: modules, /init and extra files. */
export interface ImageProfile {
  /** Kernel modules to include and load (with their dependencies). */
  modules: string[];
  /** Modules to include when the kernel has them. */
  optionalModules?: string[];
  /** The text of /init. */
  init: string;
  /** Extra files by guest path (relative to /). */
  files?: Record<string, {
    /** Contents. */ data: string;
    /** Mode bits (default 0o644). */ perm?: number;
  }>;
  /** Build the guest agent (guest-agent/nkvm-agent.c) into /sbin/nkvm-agent (needs gcc). */
  agent?: boolean;
}

export const GUEST_PROFILE: ImageProfile = {
  modules: GUEST_MODULES,
  optionalModules: GUEST_OPTIONAL_MODULES,
  init: guestInit(),
  files: { 'etc/nkvm/udhcpc.sh': { data: UDHCPC_SCRIPT, perm: 0o755 }, 'etc/nkvm/shell.sh': { data: SHELL_SCRIPT, perm: 0o755 } },
  agent: true,
};

/**
 * Build a guest image: download the Debian kernel package (or use `kernel`), extract a vmlinux,
 * and write a busybox initramfs with the RTL8139 modules and node-kvm's /init. Written
 * atomically into the cache (or `out`) with a manifest. Throws {@link ImageError}.
 */
export async function buildImage(opts: BuildImageOptions = {}): Promise<Image> {
  checkOptions('buildImage', opts, keysOf<BuildImageOptions>({ name: true, out: true, kernelPackage: true, kernel: true, modules: true, busybox: true, add: true, log: true, profile: true }));
  const log = opts.log ?? ((): void => undefined);
  const name = opts.name ?? 'default';
  const target = opts.out ?? imageDir(name);
  const profile = opts.profile ?? GUEST_PROFILE;
  const work = mkdtempSync(join(tmpdir(), 'node-kvm-image-'));
  try {
    let bzPath: string;
    let modulesDir: string | undefined = opts.modules;
    let kernelMeta: Pick<ImageManifest['kernel'], 'source' | 'package' | 'packageVersion'>;
    if (opts.kernel) {
      bzPath = opts.kernel;
      kernelMeta = { source: 'file' };
    } else {
      const pkg = opts.kernelPackage ?? DEFAULT_KERNEL_PACKAGE;
      log(`downloading ${pkg} with apt-get`);
      const k = downloadKernel(pkg, work);
      log(`got ${k.packageName} ${k.packageVersion}`);
      bzPath = k.bzImage;
      modulesDir ??= k.modulesDir;
      kernelMeta = { source: 'apt', package: k.packageName, packageVersion: k.packageVersion };
    }
    let bz: Buffer;
    try {
      bz = readUserFile(bzPath, 'kernel');
    } catch (e) {
      throw new ImageError('ERR_IMAGE_NOT_BZIMAGE', `${(e as Error).message}; check --kernel`, { cause: e });
    }
    const { vmlinux, info } = extractVmlinux(bz, bzPath);
    const release = info.version?.split(' ')[0] ?? 'unknown';
    log(`kernel ${release}: ${info.compression} payload, vmlinux ${(vmlinux.length / 1048576).toFixed(1)} MiB`);
    if (!modulesDir) {
      const guess = `/lib/modules/${release}`;
      if (!existsSync(guess)) {
        throw new ImageError('ERR_IMAGE_MODULE_MISSING', `no modules for kernel ${release}: pass --modules /path/to/lib/modules/${release}`);
      }
      modulesDir = guess;
    }
    const tree = new ModuleTree(modulesDir);
    assertModulesMatch(info.version, tree);
    const mods = tree.resolve(profile.modules, profile.optionalModules);
    log(`modules (insmod order): ${mods.map((m) => m.name).join(' ') || '(none)'}`);

    const fs = baseRootFs();
    const busyboxVersion = addBusybox(fs, opts.busybox ?? DEFAULT_BUSYBOX);
    addModules(fs, mods);
    for (const [p, f] of Object.entries(profile.files ?? {})) fs.file(p, f.data, f.perm ?? 0o644);
    if (profile.agent) {
      const exe = join(work, 'nkvm-agent');
      buildAgent(exe);
      fs.file(AGENT_GUEST_PATH, readFileSync(exe), 0o755);
      log(`guest agent built into ${AGENT_GUEST_PATH}`);
    }
    const added = (opts.add ?? []).flatMap((spec) => addHostFile(fs, spec));
    fs.file('init', profile.init, 0o755);
    const initrd = fs.toCpioGz();

    const files: Record<string, Buffer> = { [IMAGE_FILES.kernel]: bz, [IMAGE_FILES.vmlinux]: vmlinux, [IMAGE_FILES.initrd]: initrd };
    const manifest: ImageManifest = {
      formatVersion: MANIFEST_FORMAT,
      name,
      createdAt: new Date().toISOString(),
      kernel: { ...kernelMeta, release, compression: info.compression },
      busybox: { version: busyboxVersion },
      modules: mods.map((m) => m.name),
      added,
      files: Object.fromEntries(Object.entries(files).map(([f, d]) => [f, { sha256: sha256(d), size: d.length }])),
      profileSha256: profileHash(profile),
      ...(profile.agent ? { agent: AGENT_GUEST_PATH } : {}),
    };
    try {
      await writeAtomically(target, (tmp) => {
        for (const [f, d] of Object.entries(files)) writeFileSync(join(tmp, f), d);
        writeFileSync(join(tmp, 'manifest.json'), JSON.stringify(manifest, null, 2) + '\n');
      });
    } catch (e) {
      rethrowDiskFull(e, target);
    }
    const v = verifyImage(target);
    if (!v.ok) throw new ImageError('ERR_IMAGE_CORRUPT', `image just written to ${target} does not verify (${v.reason}); check the disk`);
    log(`image ready in ${target}`);
    return v.image;
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
}

/**
 * Identity of a profile: a cached image built from another /init or module list (an older
 * node-kvm) is stale and gets rebuilt, never booted with the new code's expectations.
 */
export function profileHash(profile: ImageProfile): string {
  const files = Object.entries(profile.files ?? {}).map(([p, f]) => [p, sha256(Buffer.from(f.data)), f.perm ?? 0o644]);
  const agent = profile.agent ? [sha256(Buffer.from(agentSource()))] : [];
  return sha256(Buffer.from(JSON.stringify([profile.init, profile.modules, profile.optionalModules ?? [], files, ...agent])));
}

/** A cached, verified image by name; `build: true` (re)builds it when missing or corrupt. */
export interface GetImageOptions {
  /** Build (or rebuild) the image when it is missing or does not verify. */
  build?: boolean;
  /** 'full' (default) hashes every file; 'size' trusts a cache verified earlier. */
  verify?: VerifyLevel;
  /** Progress lines, when it builds. */
  log?: (line: string) => void;
}

/** A cached image by name, verified against its manifest; built when missing with `build: true`. Throws `ERR_IMAGE_NOT_FOUND` or `ERR_IMAGE_CORRUPT` otherwise. */
export async function getImage(name: string, opts: GetImageOptions & { buildOptions?: BuildImageOptions } = {}): Promise<Image> {
  checkOptions('getImage', opts, keysOf<GetImageOptions & { buildOptions?: BuildImageOptions }>({ build: true, verify: true, log: true, buildOptions: true }));
  const dir = imageDir(name);
  let v = verifyImage(dir, opts.verify);
  const want = profileHash(opts.buildOptions?.profile ?? GUEST_PROFILE);
  if (v.ok && v.image.manifest.profileSha256 !== want) {
    v = { ok: false, reason: 'built from another /init or module list (an older node-kvm): stale' };
  }
  if (v.ok) return v.image;
  if (!opts.build) {
    throw new ImageError(existsSync(dir) ? 'ERR_IMAGE_CORRUPT' : 'ERR_IMAGE_NOT_FOUND',
      `image "${name}" is not usable (${v.reason}); run \`node-kvm image build\` (or pass { build: true })`);
  }
  if (existsSync(dir)) opts.log?.(`rebuilding image "${name}": ${v.reason}`);
  return buildImage({ ...opts.buildOptions, name, log: opts.log });
}

/** The default guest image (Debian kernel + busybox initramfs with the RTL8139 drivers). */
export function getDefaultImage(opts: GetImageOptions = {}): Promise<Image> {
  return getImage('default', opts);
}

/** One cached image, as listImages() reports it. */
export interface ImageListEntry {
  /** Image name. */
  name: string;
  /** Its directory. */
  dir: string;
  /** True when it verifies. */
  ok: boolean;
  /** Why it does not verify. */
  reason?: string;
  /** The image, when it verifies. */
  image?: Image;
}

/** Every image in the cache, verified. */
export function listImages(root = cacheRoot()): ImageListEntry[] {
  return cachedImageNames(root).map((name) => {
    const dir = join(root, name);
    const v = verifyImage(dir);
    return v.ok ? { name, dir, ok: true, image: v.image } : { name, dir, ok: false, reason: v.reason };
  });
}

/** Path of a cached image directory (whether or not it exists yet). */
export function imagePath(name = 'default'): string {
  return imageDir(name);
}
