// Error classes shared by every layer. Each carries a stable `code` so callers can branch on it
// without parsing messages (better-sqlite3 / Node core style).

/** Base for every error this package throws on purpose. */
export class NodeKvmError extends Error {
  readonly code: string;
  constructor(code: string, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = new.target.name;
    this.code = code;
  }
}

/**
 * A failed ioctl/syscall. Thrown by the native shim (the class is handed to C++ once at load).
 * `code` is the errno name ('EEXIST'), `syscall` the ioctl name ('KVM_SET_USER_MEMORY_REGION').
 */
export class KvmError extends NodeKvmError {
  readonly errno: number;
  readonly syscall: string;
  constructor(code: string, errno: number, syscall: string, message?: string) {
    super(code, message ?? `${syscall} failed: ${code} (errno ${errno})`);
    this.errno = errno;
    this.syscall = syscall;
  }
}

/** A guest-physical access outside every RAM region. */
export class GuestMemoryError extends NodeKvmError {
  readonly address: number;
  readonly length: number;
  constructor(address: number, length: number, detail = 'outside guest RAM') {
    super('ERR_GUEST_ADDRESS', `guest access [0x${address.toString(16)}, +${length}) is ${detail}`);
    this.address = address;
    this.length = length;
  }
}

/** Use of a handle after close(). */
export class ClosedError extends NodeKvmError {
  constructor(what: string) {
    super('ERR_KVM_CLOSED', `${what} is closed`);
  }
}

/** Bad argument given by the caller (not by the guest). */
export class InvalidArgumentError extends NodeKvmError {
  constructor(message: string, code = 'ERR_INVALID_ARG') {
    super(code, message);
  }
}
