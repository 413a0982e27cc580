// Station addresses given by the caller ('52:54:00:12:34:56' or 6 bytes).
import { InvalidArgumentError } from '../../errors.js';

export function parseMac(mac: Uint8Array | string): Uint8Array {
  if (typeof mac !== 'string') {
    if (mac.length !== 6) throw new InvalidArgumentError('MAC address must be 6 bytes', 'ERR_INVALID_MAC');
    return Uint8Array.from(mac);
  }
  const parts = mac.split(/[:-]/);
  if (parts.length !== 6 || parts.some((p) => !/^[0-9a-fA-F]{1,2}$/.test(p))) {
    throw new InvalidArgumentError(`invalid MAC address '${mac}'`, 'ERR_INVALID_MAC');
  }
  return Uint8Array.from(parts.map((p) => parseInt(p, 16)));
}
