import { availableParallelism } from 'node:os';
import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['tests/unit/**/*.test.ts'],
    environment: 'node',
    testTimeout: 60_000,
    // At least 2 files at a time: the slow ones (the CLI tests) spend much of their time starting
    // tsx and Chromium, so a 2-core machine has room for a second (1 worker by default there).
    maxWorkers: Math.max(2, availableParallelism() - 1),
  },
});
