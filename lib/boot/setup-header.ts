// struct setup_header (Linux Documentation/arch/x86/boot.rst, arch/x86/include/uapi/asm/bootparam.h).
// Offsets are from the start of the bzImage / the zero page: the header sits at 0x1f1 in both.
import { InvalidArgumentError } from '../errors.js';
import { ImageReader, hex } from './image.js';

export const SETUP_HEADER_OFFSET = 0x1f1;
// Field offsets (boot.rst "THE REAL-MODE KERNEL HEADER").
export const OFF_SETUP_SECTS = 0x1f1;
export const OFF_ROOT_FLAGS = 0x1f2;
export const OFF_SYSSIZE = 0x1f4;
export const OFF_VID_MODE = 0x1fa;
export const OFF_BOOT_FLAG = 0x1fe;
export const OFF_JUMP = 0x200;
export const OFF_HEADER = 0x202;
export const OFF_VERSION = 0x206;
export const OFF_TYPE_OF_LOADER = 0x210;
export const OFF_LOADFLAGS = 0x211;
export const OFF_CODE32_START = 0x214;
export const OFF_RAMDISK_IMAGE = 0x218;
export const OFF_RAMDISK_SIZE = 0x21c;
export const OFF_HEAP_END_PTR = 0x224;
export const OFF_CMD_LINE_PTR = 0x228;
export const OFF_INITRD_ADDR_MAX = 0x22c;
export const OFF_KERNEL_ALIGNMENT = 0x230;
export const OFF_RELOCATABLE_KERNEL = 0x234;
export const OFF_MIN_ALIGNMENT = 0x235;
export const OFF_XLOADFLAGS = 0x236;
export const OFF_CMDLINE_SIZE = 0x238;
export const OFF_HARDWARE_SUBARCH = 0x23c;
export const OFF_PAYLOAD_OFFSET = 0x248;
export const OFF_PAYLOAD_LENGTH = 0x24c;
export const OFF_SETUP_DATA = 0x250;
export const OFF_PREF_ADDRESS = 0x258;
export const OFF_INIT_SIZE = 0x260;
/** End of the header as of protocol 2.15 (kernel_info_offset is the last field). */
export const SETUP_HEADER_END = 0x26c;

export const BOOT_FLAG_MAGIC = 0xaa55;
/** "HdrS" read as a little-endian u32. */
export const HDRS_MAGIC = 0x53726448;

// loadflags
export const LOADED_HIGH = 0x01;
export const KASLR_FLAG = 0x02;
export const QUIET_FLAG = 0x20;
export const KEEP_SEGMENTS = 0x40;
export const CAN_USE_HEAP = 0x80;
// xloadflags
export const XLF_KERNEL_64 = 0x01;
export const XLF_CAN_BE_LOADED_ABOVE_4G = 0x02;

/** type_of_loader 0xff: "undefined" boot loader, as boot.rst tells new loaders to use. */
export const TYPE_OF_LOADER_UNDEFINED = 0xff;
/**
 * Oldest protocol we load: 2.00 brought LOADED_HIGH, i.e. the bzImage. Fields a kernel's
 * protocol predates read as their documented defaults (cmdline_size 255 before 2.06,
 * initrd_addr_max 0x37ffffff before 2.03, 1 MiB load address before 2.10).
 */
export const MIN_BOOT_PROTOCOL = 0x0200;
/** 2.04 widened syssize to 32 bits; before, its upper half was another field. */
export const PROTOCOL_SYSSIZE_32 = 0x0204;
/** 2.12 brought xloadflags: from then on a clear XLF_KERNEL_64 means "no 64-bit entry". */
export const PROTOCOL_XLOADFLAGS = 0x020c;
/** The protocol version we claim to speak when we build a header ourselves (vmlinux). */
export const BOOT_PROTOCOL_VERSION = 0x020f;
/** Before 2.06 the cmdline limit was 255 bytes (boot.rst, cmdline_size). */
export const DEFAULT_CMDLINE_SIZE = 255;

/** The setup_header fields a loader needs, parsed and checked. */
export interface SetupHeader {
  setup_sects: number;
  /** 16-byte paragraphs of protected-mode code, rounded up; only 16 bits wide (and untrustworthy) before 2.04. */
  syssize: number;
  boot_flag: number;
  version: number;
  loadflags: number;
  code32_start: number;
  initrd_addr_max: number;
  kernel_alignment: number;
  relocatable_kernel: number;
  xloadflags: number;
  cmdline_size: number;
  pref_address: number;
  init_size: number;
  /** Offset one past the header's last byte (0x202 + the jump's displacement byte). */
  headerEnd: number;
}

/** Whether the image carries a Linux boot header at all (detection; no errors thrown). */
export function hasSetupHeader(image: Uint8Array): boolean {
  if (image.length < OFF_HEADER + 4) return false;
  const dv = new DataView(image.buffer, image.byteOffset, image.byteLength);
  return dv.getUint16(OFF_BOOT_FLAG, true) === BOOT_FLAG_MAGIC && dv.getUint32(OFF_HEADER, true) === HDRS_MAGIC;
}

/** Parse and validate a bzImage setup header (which entry to use is the loader's choice). */
export function parseSetupHeader(image: Uint8Array): SetupHeader {
  const r = new ImageReader(image, 'bzImage');
  const boot_flag = r.u16(OFF_BOOT_FLAG, 'boot_flag');
  if (boot_flag !== BOOT_FLAG_MAGIC) {
    throw new InvalidArgumentError(`bzImage boot_flag is ${hex(boot_flag)}, expected 0xaa55`, 'ERR_KERNEL_FORMAT');
  }
  const header = r.u32(OFF_HEADER, 'header');
  if (header !== HDRS_MAGIC) {
    throw new InvalidArgumentError(`bzImage has no "HdrS" magic at 0x202 (found ${hex(header)}): too old or not a kernel`, 'ERR_KERNEL_TOO_OLD');
  }
  const version = r.u16(OFF_VERSION, 'version');
  if (version < MIN_BOOT_PROTOCOL) {
    throw new InvalidArgumentError(
      `boot protocol ${protocolString(version)} is older than 2.00 (no bzImage support), which node-kvm needs`,
      'ERR_KERNEL_TOO_OLD');
  }
  const loadflags = r.u8(OFF_LOADFLAGS, 'loadflags');
  if ((loadflags & LOADED_HIGH) === 0) {
    throw new InvalidArgumentError('kernel is a zImage (loadflags.LOADED_HIGH clear); only bzImage is supported', 'ERR_KERNEL_TOO_OLD');
  }
  const headerEnd = Math.min(OFF_JUMP + 2 + r.u8(OFF_JUMP + 1, 'jump'), 0x400);
  // Fields newer than the kernel's protocol read as 0, as the kernel's own header would.
  const field = (off: number, size: 1 | 2 | 4 | 8, name: string): number => {
    if (off + size > headerEnd) return 0;
    if (size === 1) return r.u8(off, name);
    if (size === 2) return r.u16(off, name);
    return size === 4 ? r.u32(off, name) : r.u64(off, name);
  };
  const setupSectsRaw = r.u8(OFF_SETUP_SECTS, 'setup_sects');
  const h: SetupHeader = {
    setup_sects: setupSectsRaw === 0 ? 4 : setupSectsRaw, // boot.rst: "If this field is 0, the real value is 4."
    syssize: version >= PROTOCOL_SYSSIZE_32 ? r.u32(OFF_SYSSIZE, 'syssize') : r.u16(OFF_SYSSIZE, 'syssize'),
    boot_flag,
    version,
    loadflags,
    code32_start: r.u32(OFF_CODE32_START, 'code32_start'),
    initrd_addr_max: field(OFF_INITRD_ADDR_MAX, 4, 'initrd_addr_max') || 0x37ffffff,
    kernel_alignment: field(OFF_KERNEL_ALIGNMENT, 4, 'kernel_alignment'),
    relocatable_kernel: field(OFF_RELOCATABLE_KERNEL, 1, 'relocatable_kernel'),
    xloadflags: field(OFF_XLOADFLAGS, 2, 'xloadflags'),
    cmdline_size: field(OFF_CMDLINE_SIZE, 4, 'cmdline_size') || DEFAULT_CMDLINE_SIZE,
    pref_address: field(OFF_PREF_ADDRESS, 8, 'pref_address'),
    init_size: field(OFF_INIT_SIZE, 4, 'init_size'),
    headerEnd,
  };
  return h;
}

/** 0x020c -> "2.12". */
export function protocolString(version: number): string {
  return `${version >> 8}.${(version & 0xff).toString().padStart(2, '0')}`;
}

/**
 * Whether the kernel has the 64-bit entry (startup_64 at +0x200): said by XLF_KERNEL_64 from
 * 2.12 on; older headers cannot say, so 'unknown'.
 */
export function has64BitEntry(h: SetupHeader): boolean | 'unknown' {
  if (h.version < PROTOCOL_XLOADFLAGS) return 'unknown';
  return (h.xloadflags & XLF_KERNEL_64) !== 0;
}
