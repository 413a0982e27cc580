// Error classes shared by every layer. Each carries a stable `code` so callers can branch on it
// without parsing messages (better-sqlite3 / Node core style). lib/error-codes.ts lists them.
import type { ErrnoCode, ErrorCode } from './error-codes.js';

export type { ErrorCode, ErrnoCode } from './error-codes.js';

/**
 * Base of every error node-kvm throws on purpose. Branch on `code` (an {@link ErrorCode}, or an
 * {@link ErrnoCode} for a {@link KvmError}), never on the message.
 */
export class NodeKvmError extends Error {
  /** Stable, machine-readable: see {@link ErrorCode}. */
  readonly code: ErrorCode | ErrnoCode;
  /**
   * @param code one of {@link ErrorCode}
   * @param message what went wrong and, where it helps, what to do next
   */
  constructor(code: ErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = new.target.name;
    this.code = code;
  }
}

/**
 * A failed ioctl or system call, thrown by the native shim (the class is handed to C++ once at
 * load). `code` is the errno name (`ENOENT`, `EACCES`, `EEXIST`…), `syscall` the ioctl's name
 * (`KVM_SET_USER_MEMORY_REGION`). `Kvm.open()` words the message as the fix (join group kvm…).
 */
export class KvmError extends NodeKvmError {
  declare readonly code: ErrnoCode;
  /** The errno number. */
  readonly errno: number;
  /** The ioctl or system call that failed. */
  readonly syscall: string;
  constructor(code: string, errno: number, syscall: string, message?: string) {
    // An errno name, not an ErrorCode: the kernel's vocabulary, passed through.
    super(code as ErrorCode, message ?? `${syscall} failed: ${code} (errno ${errno})`);
    this.errno = errno;
    this.syscall = syscall;
  }
}

/** A guest-physical access outside every RAM region. Code: `ERR_GUEST_ADDRESS`. */
export class GuestMemoryError extends NodeKvmError {
  /** First guest-physical address of the access. */
  readonly address: number;
  /** Bytes the access spanned. */
  readonly length: number;
  constructor(address: number, length: number, detail = 'outside guest RAM') {
    super('ERR_GUEST_ADDRESS', `guest access [0x${address.toString(16)}, +${length}) is ${detail}`);
    this.address = address;
    this.length = length;
  }
}

/** Use of a handle (Kvm, Vm, Vcpu, a namespace…) after close(). Code: `ERR_KVM_CLOSED`. */
export class ClosedError extends NodeKvmError {
  /** @param what the handle, as the message names it */
  constructor(what: string) {
    super('ERR_KVM_CLOSED', `${what} is closed`);
  }
}

/**
 * A bad argument or option given by the caller (not by the guest); the message names the
 * option. Code: `ERR_INVALID_ARG` by default, or a more precise one such as
 * `ERR_INVALID_MEMORY`, `ERR_INVALID_CPUS`, `ERR_INVALID_NET`, `ERR_KERNEL_FORMAT`,
 * `ERR_BUS_OVERLAP`, `ERR_FILE` (see {@link ErrorCode}).
 */
export class InvalidArgumentError extends NodeKvmError {
  constructor(message: string, code: ErrorCode = 'ERR_INVALID_ARG') {
    super(code, message);
  }
}
