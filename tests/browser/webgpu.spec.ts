import { test, expect } from '@playwright/test';

test('the browser exposes a WebGPU adapter and device', async ({ page }) => {
  await page.goto('/');
  const info = await page.evaluate(async () => {
    const adapter = await navigator.gpu?.requestAdapter();
    if (!adapter) return null;
    const device = await adapter.requestDevice();
    return { features: [...adapter.features], maxBuffer: device.limits.maxStorageBufferBindingSize };
  });
  expect(info).not.toBeNull();
  expect(info!.maxBuffer).toBeGreaterThan(0);
  console.log('WebGPU features:', info!.features.join(','), 'maxStorageBufferBindingSize', info!.maxBuffer);
});
