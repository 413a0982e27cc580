// Doorbells for virtio notifications: KVM_IOEVENTFD turns a guest write to a notify address
// into an eventfd signal inside the kernel (no exit to us), and the event loop reads it.
import type { Doorbell } from '../devices/virtio/pci-transport.js';
import { WatchedEventfd } from '../kvm/eventfd.js';
import type { Vm } from '../kvm/vm.js';

export class KvmDoorbell implements Doorbell {
  private readonly eventfd: WatchedEventfd;
  private readonly added: Array<{ addr: number; len: number }> = [];
  /** Addresses KVM refused (the writes then exit as MMIO and still work). */
  refused = 0;

  constructor(private readonly vm: Vm, onRing: () => void) {
    this.eventfd = new WatchedEventfd(onRing);
  }

  add(addr: number, len: number): boolean {
    try {
      this.vm.ioeventfd({ addr, len, eventfd: this.eventfd.fd });
      this.added.push({ addr, len });
      return true;
    } catch {
      this.refused++;
      return false;
    }
  }

  clear(): void {
    for (const a of this.added.splice(0)) {
      try {
        this.vm.ioeventfd({ ...a, eventfd: this.eventfd.fd, deassign: true });
      } catch {
        // The VM is gone or never had it: nothing left to undo.
      }
    }
  }

  close(): void {
    if (this.eventfd.isClosed) return;
    if (!this.vm.closed) this.clear();
    this.eventfd.close();
  }
}
