// The one save/load-state contract every device with state implements: a snapshot asks each
// device for a JSON-safe value and gives the same value back on restore.

/** A device whose state a snapshot saves and restores. `S` must survive JSON.stringify/parse. */
export interface Stateful<S> {
  /** The device's state now, as plain JSON-safe data. */
  saveState(): S;
  /** Put back what saveState() returned (on this or an identical device). */
  loadState(state: S): void;
}
