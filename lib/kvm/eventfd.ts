// An eventfd read from the event loop: KVM_IOEVENTFD signals it when the guest writes a
// doorbell (no userspace exit), libuv wakes us, and `onSignal` runs on the main thread.
import { ClosedError } from '../errors.js';
import { native } from '../native.js';

export class WatchedEventfd {
  readonly fd: number;
  private closed = false;
  /** Wake-ups seen (each may stand for several guest writes: the counter sums them). */
  signals = 0;
  /** Errors libuv or read() reported (the watch stops after one). */
  errors = 0;

  /** @param ref keep the event loop alive while watching (false: like socket.unref()) */
  constructor(onSignal: () => void, ref = false) {
    this.fd = native().eventfd(0);
    try {
      native().eventfdWatch(this.fd, (_count, errno) => {
        if (errno !== 0) {
          this.errors++;
          return;
        }
        this.signals++;
        onSignal();
      }, ref);
    } catch (e) {
      native().close(this.fd);
      throw e;
    }
  }

  get isClosed(): boolean {
    return this.closed;
  }

  /** Stop watching and close the fd (deassign any KVM_IOEVENTFD first). Idempotent. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    native().eventfdUnwatch(this.fd);
    native().close(this.fd);
  }

  ensureOpen(): void {
    if (this.closed) throw new ClosedError('eventfd');
  }
}
