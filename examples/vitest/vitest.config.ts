import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['*.vitest.ts'],
    // Guests are slow to boot under nested emulation; one VM at a time.
    testTimeout: 300_000,
    fileParallelism: false,
  },
});
