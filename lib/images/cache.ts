// Where images live: $XDG_CACHE_HOME/node-kvm/<name>/ (else ~/.cache/node-kvm/<name>/).
// Writes go to a temp dir beside the target and are renamed into place, so readers only ever
// see a complete image or none.
import { mkdirSync, renameSync, rmSync, mkdtempSync, existsSync, readdirSync } from 'node:fs';
import { homedir } from 'node:os';
import { basename, dirname, join } from 'node:path';
import { InvalidArgumentError } from '../errors.js';

/** The image cache: $XDG_CACHE_HOME/node-kvm, else ~/.cache/node-kvm. */
export function cacheRoot(env: NodeJS.ProcessEnv = process.env): string {
  const xdg = env.XDG_CACHE_HOME;
  return join(xdg && xdg.startsWith('/') ? xdg : join(env.HOME || homedir(), '.cache'), 'node-kvm');
}

export function assertImageName(name: string): void {
  if (!/^[A-Za-z0-9][A-Za-z0-9._-]*$/.test(name)) {
    throw new InvalidArgumentError(`image name ${JSON.stringify(name)} must be letters, digits, ".", "_" or "-"`, 'ERR_IMAGE_NAME');
  }
}

/** Directory of a named image in the cache (it may not exist). */
export function imageDir(name: string, root = cacheRoot()): string {
  assertImageName(name);
  return join(root, name);
}

/** Names of image directories in the cache (complete or not; verify them separately). */
export function cachedImageNames(root = cacheRoot()): string[] {
  if (!existsSync(root)) return [];
  return readdirSync(root, { withFileTypes: true })
    .filter((e) => e.isDirectory() && !e.name.startsWith('.'))
    .map((e) => e.name)
    .sort();
}

/**
 * Run `fill(tmpDir)` and atomically move the result to `target`. On any error the temp dir is
 * removed and an existing `target` stays untouched.
 */
export async function writeAtomically<T>(target: string, fill: (tmp: string) => Promise<T> | T): Promise<T> {
  const parent = dirname(target);
  mkdirSync(parent, { recursive: true });
  const tmp = mkdtempSync(join(parent, `.tmp-${basename(target)}-`));
  let old: string | undefined;
  try {
    const result = await fill(tmp);
    if (existsSync(target)) {
      old = join(parent, `.old-${basename(target)}-${process.pid}-${Date.now()}`);
      renameSync(target, old);
    }
    try {
      renameSync(tmp, target);
    } catch (e) {
      if (old) renameSync(old, target); // put the previous image back
      old = undefined;
      throw e;
    }
    return result;
  } finally {
    rmSync(tmp, { recursive: true, force: true });
    if (old) rmSync(old, { recursive: true, force: true });
  }
}
