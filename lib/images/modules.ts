// Find kernel modules in a /lib/modules/<version> tree and order them for insmod.
// Debian's package ships no modules.dep (depmod runs in postinst), so dependencies come from
// each module's own ".modinfo" section ("depends=a,b"), which is what depmod reads too.
import { readdirSync, readFileSync, existsSync } from 'node:fs';
import { join, basename } from 'node:path';
import { spawnSync } from 'node:child_process';
import { gunzipSync } from 'node:zlib';
import { ImageError } from './errors.js';
import { readModinfo } from './elf-sections.js';

export interface ModuleFile {
  name: string; // canonical name, '-' folded to '_' ("kvm_amd")
  path: string; // file in the tree, maybe compressed
}

export interface ResolvedModule {
  name: string;
  path: string;
  ko: Buffer; // uncompressed module
  depends: string[];
}

/** Module names are compared with '-' and '_' treated alike, as modprobe does. */
export const canonicalModuleName = (n: string): string => n.replace(/\.ko(\.(xz|zst|gz))?$/, '').replace(/-/g, '_');

export class ModuleTree {
  readonly dir: string;
  readonly version: string;
  private readonly files = new Map<string, ModuleFile>();
  private readonly builtin = new Set<string>();

  constructor(dir: string) {
    this.dir = dir;
    this.version = basename(dir);
    if (!existsSync(join(dir, 'kernel'))) {
      throw new ImageError('ERR_IMAGE_MODULE_MISSING', `${dir} has no kernel/ directory; pass --modules /lib/modules/<version> of the kernel you boot`);
    }
    const walk = (d: string): void => {
      for (const e of readdirSync(d, { withFileTypes: true })) {
        const p = join(d, e.name);
        if (e.isDirectory()) walk(p);
        else if (/\.ko(\.(xz|zst|gz))?$/.test(e.name)) {
          const name = canonicalModuleName(e.name);
          if (!this.files.has(name)) this.files.set(name, { name, path: p });
        }
      }
    };
    walk(join(dir, 'kernel'));
    const bi = join(dir, 'modules.builtin');
    if (existsSync(bi)) {
      for (const line of readFileSync(bi, 'utf8').split('\n')) if (line) this.builtin.add(canonicalModuleName(basename(line)));
    }
  }

  isBuiltin(name: string): boolean {
    return this.builtin.has(canonicalModuleName(name));
  }
  find(name: string): ModuleFile | undefined {
    return this.files.get(canonicalModuleName(name));
  }

  /**
   * The requested modules plus all their dependencies, dependencies first (insmod order).
   * Built-in modules are dropped; `optional` names that exist nowhere are skipped silently.
   */
  resolve(names: string[], optional: string[] = []): ResolvedModule[] {
    const out: ResolvedModule[] = [];
    const done = new Set<string>();
    const visiting = new Set<string>();
    const visit = (raw: string, required: boolean, chain: string[]): void => {
      const name = canonicalModuleName(raw);
      if (done.has(name) || this.isBuiltin(name)) return;
      if (visiting.has(name)) return; // cycles do not occur in practice; never loop
      const f = this.find(name);
      if (!f) {
        if (!required) return;
        const via = chain.length ? ` (needed by ${chain.join(' <- ')})` : '';
        throw new ImageError('ERR_IMAGE_MODULE_MISSING', `kernel module ${name}${via} is not in ${this.dir}; pass --modules for the matching kernel or drop the module`);
      }
      visiting.add(name);
      const ko = readModule(f.path);
      const info = readModinfo(ko);
      const vermagic = info.get('vermagic')?.[0]?.split(' ')[0];
      if (vermagic && vermagic !== this.version) {
        throw new ImageError('ERR_IMAGE_MODULE_MISMATCH', `module ${f.path} is built for kernel ${vermagic}, not ${this.version}; use the modules directory of the same kernel package`);
      }
      const depends = (info.get('depends')?.[0] ?? '').split(',').filter(Boolean).map(canonicalModuleName);
      for (const d of depends) visit(d, true, [name, ...chain]);
      visiting.delete(name);
      done.add(name);
      out.push({ name, path: f.path, ko, depends });
    };
    for (const n of names) visit(n, true, []);
    for (const n of optional) visit(n, false, []);
    return out;
  }
}

/** Read a module, decompressing .ko.xz / .ko.zst / .ko.gz (the kernel's insmod wants plain ELF here). */
export function readModule(path: string): Buffer {
  const raw = readFileSync(path);
  if (path.endsWith('.gz')) return gunzipSync(raw);
  const tool = path.endsWith('.xz') ? 'xz' : path.endsWith('.zst') ? 'zstd' : undefined;
  if (!tool) return raw;
  const r = spawnSync(tool, ['-dc'], { input: raw, maxBuffer: 1 << 28 });
  if (r.error || r.status !== 0) {
    throw new ImageError('ERR_IMAGE_TOOL_MISSING', `cannot decompress ${path} with ${tool}; install ${tool === 'xz' ? 'xz-utils' : 'zstd'}`, { cause: r.error });
  }
  return r.stdout;
}

/** Check the kernel version of a bzImage against a modules tree. */
export function assertModulesMatch(kernelVersion: string | undefined, tree: ModuleTree): void {
  const kv = kernelVersion?.split(' ')[0];
  if (kv && kv !== tree.version) {
    throw new ImageError('ERR_IMAGE_MODULE_MISMATCH', `kernel is ${kv} but modules are for ${tree.version}; pass --modules /lib/modules/${kv} (from the same package as the kernel)`);
  }
}
