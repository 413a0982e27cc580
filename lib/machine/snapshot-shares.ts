// Shares (virtio-9p) in snapshots. A snapshot records each share's tag, host path and mode
// (SnapshotConfig.shares) and, in the device's state, the 9P session by paths (fids are
// reopened on restore: lib/devices/virtio/9p/persist.ts). Before the capture the shares are
// quiesced: no chain is popped, and the requests under way on the host finish, so none writes
// guest RAM or completes a chain after the capture.
import type { ShareOptions } from '../devices/virtio/9p/share.js';
import { NodeKvmError } from '../errors.js';
import type { Platform } from './platform.js';
import type { SnapshotConfig } from './snapshot.js';

/** How long a snapshot waits for the shares' requests under way before ERR_SNAPSHOT_BUSY. */
export const SHARE_DRAIN_TIMEOUT_MS = 30_000;

/** The host directory a share of a restored machine exports, in place of the snapshot's. */
export interface ShareOverride {
  /** The share's tag: one the snapshot has. */
  tag: string;
  /** Host directory to export under that tag instead. */
  path: string;
  /** Default: as in the snapshot. */
  readonly?: boolean;
}

/**
 * The shares of a machine restored from a snapshot with `config`: the snapshot's, in its order
 * (the devices' PCI slots follow it), each tag's path and mode replaced by an override of the
 * same tag. ERR_SNAPSHOT_MISMATCH for an override whose tag the snapshot does not have.
 */
export function restoredShares(config: SnapshotConfig, overrides: readonly ShareOverride[] | undefined): ShareOptions[] {
  const saved = config.shares ?? [];
  if (overrides !== undefined && !Array.isArray(overrides)) {
    throw new NodeKvmError('ERR_INVALID_SHARE', 'Machine.fromSnapshot: shares must be an array of { tag, path, readonly? }');
  }
  const byTag = new Map<string, ShareOverride>();
  for (const [i, o] of (overrides ?? []).entries()) {
    if (o === null || typeof o !== 'object' || typeof o.tag !== 'string') {
      throw new NodeKvmError('ERR_INVALID_SHARE', `Machine.fromSnapshot: shares[${i}] must be { tag, path, readonly? }`);
    }
    if (!saved.some((s) => s.tag === o.tag)) {
      throw new NodeKvmError('ERR_SNAPSHOT_MISMATCH',
        `the snapshot has no share tagged ${JSON.stringify(o.tag)} (its shares: ${saved.map((s) => s.tag).join(', ') || 'none'})`);
    }
    if (byTag.has(o.tag)) throw new NodeKvmError('ERR_INVALID_SHARE', `Machine.fromSnapshot: share tag "${o.tag}" is given twice`);
    byTag.set(o.tag, o);
  }
  return saved.map((s) => {
    const o = byTag.get(s.tag);
    return { tag: s.tag, path: o?.path ?? s.path, readonly: o?.readonly ?? s.readonly };
  });
}

/**
 * Runs `capture` with the shares quiesced (see above), then lets them run again. The vCPUs
 * must already be paused (they would otherwise post new requests).
 */
export async function withSharesQuiesced<T>(p: Platform, capture: () => T | Promise<T>, timeoutMs = SHARE_DRAIN_TIMEOUT_MS): Promise<T> {
  try {
    await p.quiesceShares(timeoutMs);
    return await capture();
  } finally {
    p.releaseShares();
  }
}
