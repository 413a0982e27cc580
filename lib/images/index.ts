// node-kvm/images: the guest images node-kvm boots (a Debian kernel and a busybox initramfs it
// builds itself), cached per user and verified against their manifest.
export { buildImage, getImage, getDefaultImage, listImages, imagePath } from './build.js';
export type { BuildImageOptions, GetImageOptions, ImageProfile, ImageListEntry } from './build.js';
export { verifyImage } from './manifest.js';
export type { Image, ImageManifest, FileRecord, VerifyResult, VerifyLevel } from './manifest.js';
export { cacheRoot } from './cache.js';
export { ImageError } from './errors.js';
export type { ImageErrorCode } from './errors.js';
export { READY_MARKER, EXIT_MARKER_PREFIX, GUEST_PROMPT } from './guest-init.js';
