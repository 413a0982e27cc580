// Host errors -> the errno an Rlerror carries. 9P2000.L sends Linux's errno numbers (the
// generic table, which x86 uses); the host's numbers can differ on other architectures, so
// the mapping goes by the errno's name (err.code), not its number.

/** Linux's errno numbers (asm-generic/errno-base.h and errno.h) that a file server returns. */
export const LINUX_ERRNO = {
  EPERM: 1, ENOENT: 2, ESRCH: 3, EINTR: 4, EIO: 5, ENXIO: 6, E2BIG: 7, ENOEXEC: 8, EBADF: 9, ECHILD: 10,
  EAGAIN: 11, ENOMEM: 12, EACCES: 13, EFAULT: 14, ENOTBLK: 15, EBUSY: 16, EEXIST: 17, EXDEV: 18, ENODEV: 19,
  ENOTDIR: 20, EISDIR: 21, EINVAL: 22, ENFILE: 23, EMFILE: 24, ENOTTY: 25, ETXTBSY: 26, EFBIG: 27, ENOSPC: 28,
  ESPIPE: 29, EROFS: 30, EMLINK: 31, EPIPE: 32, EDOM: 33, ERANGE: 34, EDEADLK: 35, ENAMETOOLONG: 36, ENOLCK: 37,
  ENOSYS: 38, ENOTEMPTY: 39, ELOOP: 40, ENOMSG: 42, EIDRM: 43, ENOSTR: 60, ENODATA: 61, ETIME: 62, ENOSR: 63,
  ENOLINK: 67, EPROTO: 71, EBADMSG: 74, EOVERFLOW: 75, EILSEQ: 84, EUSERS: 87, ENOTSOCK: 88, EMSGSIZE: 90,
  EPROTOTYPE: 91, ENOPROTOOPT: 92, EOPNOTSUPP: 95, ENOTSUP: 95, EADDRINUSE: 98, ENETDOWN: 100, ENOBUFS: 105,
  ETIMEDOUT: 110, ECONNREFUSED: 111, ESTALE: 116, EDQUOT: 122, ECANCELED: 125, EOWNERDEAD: 130,
} as const;

export type LinuxErrnoName = keyof typeof LINUX_ERRNO;

/**
 * The Linux errno for a host error: `err.code` ('ENOENT') looked up by name. An error with no
 * errno name (a bug in the server, not a host refusal) maps to EIO, so the guest sees an I/O
 * error instead of the device stopping.
 */
export function toLinuxErrno(err: unknown): number {
  const code = (err as { code?: unknown } | null)?.code;
  if (typeof code === 'string' && Object.hasOwn(LINUX_ERRNO, code)) return LINUX_ERRNO[code as LinuxErrnoName];
  return LINUX_ERRNO.EIO;
}

/** An error the server raises itself, carrying the Linux errno to answer with. */
export class P9Error extends Error {
  readonly errno: number;
  readonly code: string;
  constructor(code: LinuxErrnoName, message?: string) {
    super(message ?? code);
    this.code = code;
    this.errno = LINUX_ERRNO[code];
  }
}
