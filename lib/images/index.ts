// Guest images: build, cache, verify.
export { buildImage, getImage, getDefaultImage, listImages, imagePath, GUEST_PROFILE, DEFAULT_KERNEL_PACKAGE } from './build.js';
export type { BuildImageOptions, GetImageOptions, ImageProfile, ImageListEntry } from './build.js';
export { verifyImage, IMAGE_FILES, MANIFEST_FORMAT } from './manifest.js';
export type { Image, ImageManifest, VerifyResult, VerifyLevel } from './manifest.js';
export { cacheRoot } from './cache.js';
export { CpioWriter } from './cpio.js';
export { parseBzImage, extractVmlinux } from './bzimage.js';
export { ImageError } from './errors.js';
export type { ImageErrorCode } from './errors.js';
export { READY_MARKER, EXIT_MARKER_PREFIX, GUEST_PROMPT } from './guest-init.js';
