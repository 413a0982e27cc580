// The L1 image: the same Debian kernel as the default guest image, with an initramfs that
// carries virtio/9p/overlay/kvm_amd and our lab /init. Cached as "lab" beside "default".
import { getImage, type BuildImageOptions, type ImageProfile } from '../images/build.js';
import type { Image } from '../images/manifest.js';
import { LAB_MODULES, LAB_OPTIONAL_MODULES, labInit } from './l1-init.js';

export const LAB_IMAGE_NAME = 'lab';

export const LAB_PROFILE: ImageProfile = { modules: LAB_MODULES, optionalModules: LAB_OPTIONAL_MODULES, init: labInit() };

export function getLabImage(opts: { build?: boolean; log?: (line: string) => void; buildOptions?: Omit<BuildImageOptions, 'profile' | 'name'> } = {}): Promise<Image> {
  return getImage(LAB_IMAGE_NAME, { build: opts.build ?? true, log: opts.log, buildOptions: { ...opts.buildOptions, profile: LAB_PROFILE } });
}
