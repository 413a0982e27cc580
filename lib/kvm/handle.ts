// Shared lifecycle for every fd-owning handle: idempotent close(), Symbol.dispose, use after
// close throws ERR_KVM_CLOSED, and a finalizer that closes a forgotten fd (safety net only;
// deterministic release is close()).
import { ClosedError } from '../errors.js';
import { native } from '../native.js';

const leakedFds = new FinalizationRegistry<number>((fd) => {
  try {
    native().close(fd);
  } catch {
    // The fd may already be gone; nothing to report from a finalizer.
  }
});

export abstract class FdHandle implements Disposable {
  #fd: number;
  #closed = false;

  protected constructor(fd: number, private readonly what: string) {
    this.#fd = fd;
    leakedFds.register(this, fd, this);
  }

  /** The raw file descriptor (for users going below this API). */
  get fd(): number {
    this.ensureOpen();
    return this.#fd;
  }

  /** The fd without the open check (for subclasses' release paths and hot paths). */
  protected get rawFd(): number {
    return this.#fd;
  }

  /** True once close() ran; any other use then throws `ERR_KVM_CLOSED`. */
  get closed(): boolean {
    return this.#closed;
  }

  protected ensureOpen(): void {
    if (this.#closed) throw new ClosedError(this.what);
  }

  /**
   * For a subclass constructor that fails after super(): close the fd now and drop the
   * finalizer (which would otherwise close the same number later, when it may be reused).
   */
  protected discardAfterFailedInit(): void {
    if (this.#closed) return;
    this.#closed = true;
    leakedFds.unregister(this);
    native().close(this.#fd);
  }

  /** Release what the subclass owns besides the fd (children, mappings). */
  protected releaseResources(): void {}

  /** Release the fd and everything this handle owns. Idempotent. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    leakedFds.unregister(this);
    try {
      this.releaseResources();
    } finally {
      native().close(this.#fd);
    }
  }

  /** Same as close(), for `using`. */
  [Symbol.dispose](): void {
    this.close();
  }
}
