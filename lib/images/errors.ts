// Errors raised while building, caching or verifying guest images. Every one carries a stable
// `code` and a message that tells the user what to do next.
import { NodeKvmError } from '../errors.js';

/** The codes an {@link ImageError} carries. */
export type ImageErrorCode =
  | 'ERR_IMAGE_PACKAGE_MISSING' // apt does not know the kernel package
  | 'ERR_IMAGE_APT_FAILED' // apt-get download failed (often: no network)
  | 'ERR_IMAGE_TOOL_MISSING' // dpkg-deb / xz / zstd / busybox not installed
  | 'ERR_IMAGE_NOT_BZIMAGE' // the kernel file lacks the x86 boot header
  | 'ERR_IMAGE_BAD_PAYLOAD' // the bzImage payload did not decompress to an ELF
  | 'ERR_IMAGE_MODULE_MISSING' // a module (or one of its dependencies) is absent
  | 'ERR_IMAGE_MODULE_MISMATCH' // modules were built for another kernel version
  | 'ERR_IMAGE_ADD' // a --add file is unusable
  | 'ERR_IMAGE_NO_SPACE' // ENOSPC while writing the cache
  | 'ERR_IMAGE_NOT_FOUND' // no such cached image
  | 'ERR_IMAGE_CORRUPT'; // cached files do not match their manifest

/**
 * Building, caching or verifying a guest image failed; the message says what to do next.
 * Codes: {@link ImageErrorCode} (`ERR_IMAGE_*`).
 */
export class ImageError extends NodeKvmError {
  declare readonly code: ImageErrorCode;
  constructor(code: ImageErrorCode, message: string, options?: { cause?: unknown }) {
    super(code, message, options);
  }
}

/** Re-throw ENOSPC as a clear ImageError; everything else passes through untouched. */
export function rethrowDiskFull(e: unknown, where: string): never {
  if ((e as NodeJS.ErrnoException | undefined)?.code === 'ENOSPC') {
    throw new ImageError(
      'ERR_IMAGE_NO_SPACE',
      `disk full while writing ${where}; free some space (or point XDG_CACHE_HOME at a bigger disk) and run \`node-kvm image build\` again`,
      { cause: e },
    );
  }
  throw e;
}
