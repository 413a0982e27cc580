// Compose an initramfs: a tree of entries (parents created on demand), emitted sorted so the
// archive is reproducible, through the cpio newc writer.
import { spawnSync } from 'node:child_process';
import { closeSync, fstatSync, readFileSync, realpathSync, statSync } from 'node:fs';
import { openUserFile, readUserFile, UserFileError } from '../user-file.js';
import { CpioWriter } from './cpio.js';
import { ImageError } from './errors.js';
import type { ResolvedModule } from './modules.js';

type Node =
  | { kind: 'dir'; perm: number }
  | { kind: 'file'; data: Uint8Array; perm: number }
  | { kind: 'symlink'; target: string }
  | { kind: 'chr'; major: number; minor: number; perm: number };

export class RootFs {
  private readonly nodes = new Map<string, Node>();

  private put(path: string, node: Node): void {
    const p = path.replace(/^\/+/, '').replace(/\/+$/, '');
    const parts = p.split('/');
    for (let i = 1; i < parts.length; i++) {
      const d = parts.slice(0, i).join('/');
      if (!this.nodes.has(d)) this.nodes.set(d, { kind: 'dir', perm: 0o755 });
    }
    this.nodes.set(p, node);
  }
  has(path: string): boolean {
    return this.nodes.has(path.replace(/^\/+/, ''));
  }
  dir(path: string, perm = 0o755): this {
    this.put(path, { kind: 'dir', perm });
    return this;
  }
  file(path: string, data: Uint8Array | string, perm = 0o644): this {
    this.put(path, { kind: 'file', data: typeof data === 'string' ? Buffer.from(data) : data, perm });
    return this;
  }
  symlink(path: string, target: string): this {
    this.put(path, { kind: 'symlink', target });
    return this;
  }
  charDevice(path: string, major: number, minor: number, perm = 0o600): this {
    this.put(path, { kind: 'chr', major, minor, perm });
    return this;
  }

  /** gzip'd newc archive. */
  toCpioGz(): Buffer {
    const w = new CpioWriter();
    for (const name of [...this.nodes.keys()].sort()) {
      const n = this.nodes.get(name)!;
      if (n.kind === 'dir') w.dir(name, n.perm);
      else if (n.kind === 'file') w.file(name, n.data, n.perm);
      else if (n.kind === 'symlink') w.symlink(name, n.target);
      else w.charDevice(name, n.major, n.minor, n.perm);
    }
    return w.finishGzip();
  }
}

/** The skeleton every node-kvm initramfs has: standard dirs and the two device nodes the
 *  kernel needs before devtmpfs is mounted (init's stdio is /dev/console). */
export function baseRootFs(): RootFs {
  const fs = new RootFs();
  for (const d of ['bin', 'sbin', 'usr/bin', 'usr/sbin', 'etc', 'proc', 'sys', 'dev', 'run', 'root', 'mnt', 'lib/modules']) fs.dir(d);
  fs.dir('tmp', 0o1777);
  fs.charDevice('dev/console', 5, 1, 0o600);
  fs.charDevice('dev/null', 1, 3, 0o666);
  fs.file('etc/passwd', 'root:x:0:0:root:/root:/bin/sh\n');
  fs.file('etc/group', 'root:x:0:\n');
  return fs;
}

/** Add a static busybox and one symlink per applet; returns its version string. */
export function addBusybox(fs: RootFs, busyboxPath: string): string {
  let data: Buffer;
  try {
    data = readUserFile(busyboxPath, 'busybox');
  } catch (e) {
    throw new ImageError('ERR_IMAGE_TOOL_MISSING', `${(e as Error).message}: install busybox-static (apt-get install busybox-static) or pass --busybox PATH`, { cause: e });
  }
  const list = spawnSync(busyboxPath, ['--list-full'], { encoding: 'utf8' });
  if (list.status !== 0) throw new ImageError('ERR_IMAGE_TOOL_MISSING', `${busyboxPath} --list-full failed; pass a static busybox with --busybox`);
  const ldd = spawnSync('ldd', [busyboxPath], { encoding: 'utf8' });
  if (ldd.status === 0 && /=>/.test(ldd.stdout)) {
    throw new ImageError('ERR_IMAGE_TOOL_MISSING', `${busyboxPath} is dynamically linked; install busybox-static or pass a static busybox with --busybox`);
  }
  fs.file('bin/busybox', data, 0o755);
  for (const applet of list.stdout.split('\n').map((s) => s.trim()).filter(Boolean)) {
    if (applet !== 'bin/busybox' && !fs.has(applet)) fs.symlink(applet, '/bin/busybox');
  }
  const ver = spawnSync(busyboxPath, [], { encoding: 'utf8' }).stdout.split('\n')[0] ?? '';
  return /BusyBox (v\S+)/.exec(ver)?.[1] ?? 'unknown';
}

/** Modules flat in /lib/modules/<name>.ko; /etc/nkvm/modules lists them in insmod order. */
export function addModules(fs: RootFs, mods: ResolvedModule[]): void {
  for (const m of mods) fs.file(`lib/modules/${m.name}.ko`, m.ko, 0o644);
  fs.file('etc/nkvm/modules', mods.map((m) => m.name).join('\n') + '\n');
}

/** Shared libraries (and the dynamic loader) an ELF executable needs, by `ldd`. */
export function sharedLibraries(path: string): string[] {
  const r = spawnSync('ldd', [path], { encoding: 'utf8' });
  if (r.status !== 0) return []; // "not a dynamic executable": static, nothing to add
  const libs: string[] = [];
  for (const line of r.stdout.split('\n')) {
    const m = /=>\s*(\/\S+)/.exec(line) ?? /^\s*(\/\S+)\s+\(/.exec(line);
    if (m) libs.push(m[1]!);
  }
  return libs;
}

/** `--add HOST:GUEST`: the file, and for dynamic ELF executables their libraries + loader. */
export function addHostFile(fs: RootFs, spec: string): string[] {
  const colon = spec.indexOf(':');
  const host = colon < 0 ? spec : spec.slice(0, colon);
  const guest = colon < 0 ? spec : spec.slice(colon + 1);
  if (!host || !guest.startsWith('/')) {
    throw new ImageError('ERR_IMAGE_ADD', `--add ${spec}: expected HOSTPATH:/GUEST/PATH (guest path absolute)`);
  }
  let data: Buffer;
  let mode: number;
  try {
    // The shared opener: regular files only, opened without blocking (a FIFO cannot hang us).
    const { fd } = openUserFile(host, `--add ${spec}: the file`);
    try {
      mode = fstatSync(fd).mode & 0o7777;
    } finally {
      closeSync(fd);
    }
    data = readUserFile(host, `--add ${spec}: the file`);
  } catch (e) {
    if (e instanceof UserFileError) throw new ImageError('ERR_IMAGE_ADD', e.message, { cause: e });
    throw e;
  }
  fs.file(guest, data, mode);
  const added = [guest];
  if (data.length > 4 && data.readUInt32BE(0) === 0x7f454c46) {
    for (const lib of sharedLibraries(host)) {
      if (fs.has(lib)) continue;
      const real = realpathSync(lib);
      fs.file(lib, readFileSync(real), statSync(real).mode & 0o7777);
      added.push(lib);
    }
  }
  return added;
}
