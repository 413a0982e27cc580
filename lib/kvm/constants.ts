// KVM_CAP_* / KVM_EXIT_* / KVM_MP_STATE_* … numbers, taken from the uapi header the shim was
// compiled against (native/layout.cc), so they can never drift from the kernel's.
import { native } from '../native.js';

/** Numbers from the kernel's uapi headers by name (`KVM_CAP_*`, `KVM_EXIT_*`, …); an unknown name reads as undefined. */
export type KvmConstants = Readonly<Record<string, number>>;

/** Lazily loaded so importing the package does not require the addon. */
export const constants: KvmConstants = new Proxy({} as Record<string, number>, {
  get: (_t, key) => (typeof key === 'string' ? native().constants[key] : undefined),
  has: (_t, key) => typeof key === 'string' && key in native().constants,
  ownKeys: () => Reflect.ownKeys(native().constants),
  getOwnPropertyDescriptor: (_t, key) =>
    typeof key === 'string' && key in native().constants
      ? { value: native().constants[key], enumerable: true, configurable: true, writable: false }
      : undefined,
});

const MP_STATES = ['runnable', 'uninitialized', 'init-received', 'halted', 'sipi-received', 'stopped',
  'check-stop', 'operating', 'load'] as const;

export function mpStateName(n: number): (typeof MP_STATES)[number] {
  return MP_STATES[n] ?? 'runnable';
}

export function mpStateNumber(name: (typeof MP_STATES)[number]): number {
  const i = MP_STATES.indexOf(name);
  if (i < 0) throw new RangeError(`unknown mp state ${String(name)}`);
  return i;
}
