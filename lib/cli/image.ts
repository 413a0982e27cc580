// `node-kvm image build|list|path`
import { buildImage, imagePath, listImages } from '../images/build.js';
import { verifyImage } from '../images/manifest.js';
import { getLabImage } from '../lab/lab-image.js';
import { UsageError, parseCommandArgs, write, type CliCommand, type CliIo } from './args.js';

const usage = `usage:
  node-kvm image build [--name NAME] [--kernel-package PKG] [--out DIR] [--kernel BZIMAGE]
                       [--modules DIR] [--busybox PATH] [--add HOSTPATH:GUESTPATH]... [--lab]
      build the guest image (Debian kernel via apt + busybox initramfs) into the cache
      (--lab: also build the nested lab's L1 image)
  node-kvm image list [--json]     cached images and whether they verify
  node-kvm image path [NAME]       directory of an image (default: "default")`;

async function build(argv: string[], io: CliIo): Promise<number> {
  const { values } = parseCommandArgs(argv, {
    name: { type: 'string' },
    'kernel-package': { type: 'string' },
    out: { type: 'string' },
    kernel: { type: 'string' },
    modules: { type: 'string' },
    busybox: { type: 'string' },
    add: { type: 'string', multiple: true },
    lab: { type: 'boolean' },
  });
  const log = (l: string): void => write(io.stderr, l);
  const t0 = Date.now();
  const img = await buildImage({
    name: values.name, out: values.out, kernelPackage: values['kernel-package'], kernel: values.kernel,
    modules: values.modules, busybox: values.busybox, add: values.add, log,
  });
  write(io.stdout, img.dir);
  if (values.lab) {
    const lab = await getLabImage({ build: true, log, buildOptions: { kernelPackage: values['kernel-package'], kernel: values.kernel, modules: values.modules, busybox: values.busybox } });
    write(io.stdout, lab.dir);
  }
  log(`done in ${((Date.now() - t0) / 1000).toFixed(1)} s`);
  return 0;
}

function list(argv: string[], io: CliIo): number {
  const { values } = parseCommandArgs(argv, { json: { type: 'boolean' } });
  const imgs = listImages();
  if (values.json) {
    write(io.stdout, JSON.stringify(imgs.map((i) => ({ name: i.name, dir: i.dir, ok: i.ok, reason: i.reason, manifest: i.image?.manifest })), null, 2));
    return 0;
  }
  if (imgs.length === 0) write(io.stdout, 'no images cached; run `node-kvm image build`');
  for (const i of imgs) {
    write(io.stdout, i.ok
      ? `${i.name}\t${i.image!.manifest.kernel.release}\t${i.image!.manifest.createdAt}\t${i.dir}`
      : `${i.name}\tBROKEN (${i.reason})\t${i.dir}`);
  }
  return 0;
}

function path(argv: string[], io: CliIo): number {
  const { positionals } = parseCommandArgs(argv, {}, true);
  if (positionals.length > 1) throw new UsageError('image path takes at most one NAME');
  const dir = imagePath(positionals[0] ?? 'default');
  write(io.stdout, dir);
  const v = verifyImage(dir);
  if (!v.ok) {
    write(io.stderr, `node-kvm image path: ${v.reason}; run \`node-kvm image build\``);
    return 1;
  }
  return 0;
}

export const command: CliCommand = {
  summary: 'build, list and locate guest images (kernel + initramfs)',
  usage,
  async run(argv, io) {
    const [sub, ...rest] = argv;
    switch (sub) {
      case 'build':
        return build(rest, io);
      case 'list':
        return list(rest, io);
      case 'path':
        return path(rest, io);
      default:
        throw new UsageError(sub === undefined ? 'missing subcommand' : `unknown subcommand "${sub}"`);
    }
  },
};
