import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { flavourPackageName } from '../../lib/images/flavour.js';

describe('kernel flavours of the default image', () => {
  it('derive the package name from the default one (same ABI)', () => {
    assert.equal(flavourPackageName('linux-image-6.1.0-57-amd64', 'rt'), 'linux-image-6.1.0-57-rt-amd64');
    assert.equal(flavourPackageName('linux-image-6.12.9+bpo-1-amd64', 'cloud'), 'linux-image-6.12.9+bpo-1-cloud-amd64');
  });
  it('refuse what is no versioned amd64 image, or an unknown flavour', () => {
    for (const [pkg, fl] of [['linux-image-amd64', 'rt'], ['linux-image-6.1.0-57-rt-amd64', 'rt'], ['linux-image-6.1.0-57-amd64', 'x']]) {
      assert.throws(() => flavourPackageName(pkg!, fl as 'rt'), (e: Error & { code?: string }) => e.code === 'ERR_IMAGE_PACKAGE_MISSING', `${pkg} ${fl}`);
    }
  });
});
