// Pull the uncompressed vmlinux ELF out of an x86 bzImage. The boot header tells us exactly
// where the compressed payload lies (protocol >= 2.08: payload_offset/payload_length, relative
// to the protected-mode code that starts after the setup sectors), so we need no magic-byte
// scanning; the payload's own magic picks the decompressor. Debian 6.1 uses xz
// (CONFIG_KERNEL_XZ=y); zstd, gzip and lz4 are handled too. Decompression is done by the system
// tools (xz, zstd, lz4) because Node has no xz codec.
import { spawnSync } from 'node:child_process';
import { gunzipSync } from 'node:zlib';
import { ImageError } from './errors.js';

export interface BzImageInfo {
  protocol: number; // e.g. 0x020f
  setupSects: number;
  payloadOffset: number; // absolute file offset of the compressed kernel
  payloadLength: number;
  compression: 'xz' | 'zstd' | 'gzip' | 'lz4';
  version?: string; // the kernel_version string ("6.1.0-56-amd64 (debian-kernel@...) #1 ...")
}

const MAGICS: ReadonlyArray<[BzImageInfo['compression'], number[]]> = [
  ['xz', [0xfd, 0x37, 0x7a, 0x58, 0x5a, 0x00]],
  ['zstd', [0x28, 0xb5, 0x2f, 0xfd]],
  ['gzip', [0x1f, 0x8b]],
  ['lz4', [0x02, 0x21, 0x4c, 0x18]],
];

export function parseBzImage(buf: Buffer, what = 'kernel'): BzImageInfo {
  const notBz = (why: string): ImageError =>
    new ImageError('ERR_IMAGE_NOT_BZIMAGE', `${what} is not an x86 bzImage (${why}); pass a Linux bzImage (boot/vmlinuz-*)`);
  if (buf.length < 0x260) throw notBz('file too small');
  if (buf.readUInt16LE(0x1fe) !== 0xaa55 || buf.toString('latin1', 0x202, 0x206) !== 'HdrS') throw notBz('no "HdrS" boot header');
  const protocol = buf.readUInt16LE(0x206);
  if (protocol < 0x208) throw notBz(`boot protocol 0x${protocol.toString(16)} is older than 2.08`);
  const setupSects = buf[0x1f1] || 4; // 0 means 4 (boot protocol quirk)
  const pmStart = (setupSects + 1) * 512;
  const payloadOffset = pmStart + buf.readUInt32LE(0x248);
  const payloadLength = buf.readUInt32LE(0x24c);
  if (payloadOffset + payloadLength > buf.length || payloadLength === 0) throw notBz('payload outside the file');
  const head = buf.subarray(payloadOffset, payloadOffset + 8);
  const found = MAGICS.find(([, m]) => m.every((b, i) => head[i] === b));
  if (!found) throw new ImageError('ERR_IMAGE_BAD_PAYLOAD', `${what}: unknown payload compression (bytes ${head.toString('hex')}); use --kernel with a gzip/xz/zstd/lz4 bzImage`);
  let version: string | undefined;
  const vOff = buf.readUInt16LE(0x20e);
  if (vOff !== 0 && vOff + 0x200 < buf.length) {
    const start = vOff + 0x200;
    const end = buf.indexOf(0, start);
    if (end > start) version = buf.toString('latin1', start, Math.min(end, start + 256));
  }
  return { protocol, setupSects, payloadOffset, payloadLength, compression: found[0], version };
}

function decompressWithTool(tool: string, args: string[], input: Buffer, what: string): Buffer {
  const r = spawnSync(tool, args, { input, maxBuffer: 1 << 30 });
  if (r.error) {
    const code = (r.error as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') throw new ImageError('ERR_IMAGE_TOOL_MISSING', `${tool} is not installed; install it (apt-get install ${tool === 'xz' ? 'xz-utils' : tool}) to unpack ${what}`);
    throw new ImageError('ERR_IMAGE_BAD_PAYLOAD', `${tool} failed on ${what}: ${r.error.message}`, { cause: r.error });
  }
  // The payload is followed by a 4-byte size field that xz/zstd may call "trailing garbage";
  // what matters is that we got a whole ELF out, which the caller verifies.
  if (r.stdout.length === 0) {
    throw new ImageError('ERR_IMAGE_BAD_PAYLOAD', `${tool} produced nothing for ${what}: ${r.stderr.toString().trim()}`);
  }
  return r.stdout;
}

/** Decompress the payload of a bzImage into the vmlinux ELF and check it is one. */
export function extractVmlinux(buf: Buffer, what = 'kernel'): { vmlinux: Buffer; info: BzImageInfo } {
  const info = parseBzImage(buf, what);
  const payload = buf.subarray(info.payloadOffset, info.payloadOffset + info.payloadLength);
  let out: Buffer;
  switch (info.compression) {
    case 'gzip':
      out = gunzipSync(payload);
      break;
    case 'xz':
      out = decompressWithTool('xz', ['-dc', '--single-stream', '-q'], payload, what);
      break;
    case 'zstd':
      out = decompressWithTool('zstd', ['-dc', '-q'], payload, what);
      break;
    case 'lz4':
      out = decompressWithTool('lz4', ['-dc', '-q'], payload, what);
      break;
  }
  if (out.length < 64 || out.readUInt32BE(0) !== 0x7f454c46) {
    throw new ImageError('ERR_IMAGE_BAD_PAYLOAD', `${what}: the ${info.compression} payload is not an ELF vmlinux`);
  }
  return { vmlinux: out, info };
}
