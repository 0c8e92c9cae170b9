import { defineConfig } from '@playwright/test';
import { chromiumLaunchOptions } from './src/cli/chromium.ts';

const PORT = Number(process.env.TEST_PORT ?? 5199);

/**
 * The specs that run kernels and whole models against the oracle keep the CPU busy (WebGPU on
 * SwiftShader without a GPU); the app, storage and security specs mostly wait on one core. Two
 * projects of one worker each run one of each side by side, never two GPU-heavy specs at once.
 */
const GPU_SPECS = /\/(engine|gpu-trainer|adapters|kernels|training-matmul|training-kernels|hf-convert-heap|storage-heap)\.spec\.ts$/;

export default defineConfig({
  testDir: 'tests/browser',
  timeout: 180_000,
  expect: { timeout: 30_000 },
  fullyParallel: false,
  workers: 2,
  reporter: [['list']],
  use: {
    baseURL: `http://localhost:${PORT}`,
    launchOptions: chromiumLaunchOptions(),
  },
  projects: [
    { name: 'oracle', testMatch: GPU_SPECS, workers: 1 },
    { name: 'app', testIgnore: GPU_SPECS, workers: 1 },
  ],
  webServer: {
    command: `RL_NO_HMR=1 npx vite --port ${PORT} --strictPort`,
    url: `http://localhost:${PORT}/`,
    reuseExistingServer: !process.env.CI,
    timeout: 120_000,
  },
});
