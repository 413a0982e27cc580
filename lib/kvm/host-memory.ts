// Host mappings that back guest RAM but belong to no VM yet: a copy-on-write view of a file or
// memfd (a snapshot's RAM, mapped before the VM that will use it exists).
import { InvalidArgumentError } from '../errors.js';
import { native } from '../native.js';

/**
 * mmap(MAP_PRIVATE) of `size` bytes of `fd` at `offset`: writes go to private pages, never to
 * the file. Pass it as `backing` to Vm.createMemoryRegion(), which then owns and unmaps it.
 */
export function mapFilePrivate(fd: number, size: number, offset = 0): ArrayBuffer {
  for (const [name, v] of [['fd', fd], ['size', size], ['offset', offset]] as const) {
    if (!Number.isSafeInteger(v) || v < 0) throw new InvalidArgumentError(`${name} must be a non-negative integer, got ${String(v)}`);
  }
  return native().mmapFilePrivate(fd, size, offset);
}
