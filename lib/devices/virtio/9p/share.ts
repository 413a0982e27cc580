// Host directories shared into the guest (virtio-9p exports): the options a caller gives and
// their checks, made before any VM exists. A share is one directory, seen by the guest under a
// mount tag; `readonly` makes the server answer every change with EROFS.
//
// Ownership (as QEMU's `security_model=none`): files and directories the guest creates belong
// to the user the VMM runs as, with the mode the guest asked for; a guest chown is tried and its
// EPERM ignored (an unprivileged VMM cannot give files away). The guest sees the host's
// uid/gid/mode of every file unchanged.
import { accessSync, constants, statSync } from 'node:fs';
import { resolve } from 'node:path';
import { InvalidArgumentError } from '../../../errors.js';

/** A host directory shared with the guest over virtio-9p (`Machine.create({ shares })`). */
export interface ShareOptions {
  /** Host directory to export. */
  path: string;
  /** Mount tag the guest names it by (`mount -t 9p TAG /mnt`): 1..31 bytes, unique per machine. */
  tag: string;
  /** Refuse every change (EROFS). Default false. */
  readonly?: boolean;
}

export interface ResolvedShare {
  path: string;
  tag: string;
  readonly: boolean;
}

/** Longest mount tag, in bytes. */
export const MAX_TAG_BYTES = 31;

/** Checks shares and resolves their paths; coded errors name the share. */
export function resolveShares(shares: readonly ShareOptions[] | undefined): ResolvedShare[] {
  if (shares === undefined) return [];
  if (!Array.isArray(shares)) throw new InvalidArgumentError('shares must be an array of { path, tag, readonly? }', 'ERR_INVALID_SHARE');
  const tags = new Set<string>();
  return shares.map((s, i) => {
    if (s === null || typeof s !== 'object') throw new InvalidArgumentError(`shares[${i}] must be { path, tag, readonly? }`, 'ERR_INVALID_SHARE');
    const { tag, path } = s;
    if (typeof tag !== 'string' || tag.length === 0) throw new InvalidArgumentError(`shares[${i}].tag must be a non-empty string`, 'ERR_INVALID_SHARE');
    const bytes = Buffer.byteLength(tag);
    if (bytes > MAX_TAG_BYTES) throw new InvalidArgumentError(`share tag "${tag}" is ${bytes} bytes; at most ${MAX_TAG_BYTES}`, 'ERR_INVALID_SHARE');
    // eslint-disable-next-line no-control-regex
    if (/[\u0000-\u001f,\s]/.test(tag)) throw new InvalidArgumentError(`share tag "${tag}" holds a space, comma or control character`, 'ERR_INVALID_SHARE');
    if (tags.has(tag)) throw new InvalidArgumentError(`share tag "${tag}" is used twice`, 'ERR_INVALID_SHARE');
    tags.add(tag);
    if (typeof path !== 'string' || path.length === 0) throw new InvalidArgumentError(`share "${tag}": path must be a non-empty string`, 'ERR_INVALID_SHARE');
    if (s.readonly !== undefined && typeof s.readonly !== 'boolean') throw new InvalidArgumentError(`share "${tag}": readonly must be a boolean`, 'ERR_INVALID_SHARE');
    const abs = resolve(path);
    let isDir: boolean;
    try {
      isDir = statSync(abs).isDirectory();
    } catch (e) {
      throw new InvalidArgumentError(`share "${tag}": ${abs}: ${(e as NodeJS.ErrnoException).code ?? e}`, 'ERR_SHARE_PATH');
    }
    if (!isDir) throw new InvalidArgumentError(`share "${tag}": ${abs} is not a directory`, 'ERR_SHARE_PATH');
    try {
      accessSync(abs, constants.R_OK | constants.X_OK);
    } catch {
      throw new InvalidArgumentError(`share "${tag}": ${abs} is not readable and searchable by this user`, 'ERR_SHARE_PATH');
    }
    return { path: abs, tag, readonly: s.readonly ?? false };
  });
}

/**
 * Parses the CLI's `--share HOSTDIR[=TAG][:ro]`. The default tag is the directory's last
 * name (cut to 31 bytes).
 */
export function parseShareArg(arg: string): ShareOptions {
  let rest = arg;
  let readonly = false;
  if (rest.endsWith(':ro')) { readonly = true; rest = rest.slice(0, -3); } else if (rest.endsWith(':rw')) rest = rest.slice(0, -3);
  const eq = rest.lastIndexOf('=');
  let path = rest;
  let tag: string | undefined;
  if (eq > 0) { path = rest.slice(0, eq); tag = rest.slice(eq + 1); }
  if (path.length === 0) throw new InvalidArgumentError(`--share ${arg}: no directory`, 'ERR_INVALID_SHARE');
  if (tag === undefined) {
    const base = resolve(path).split('/').filter(Boolean).pop() ?? 'root';
    tag = Buffer.from(base).subarray(0, MAX_TAG_BYTES).toString().replace(/\uFFFD+$/, '') || 'share';
  }
  return { path, tag, readonly };
}
