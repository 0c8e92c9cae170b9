/**
 * How we launch Debian's Chromium with WebGPU. Playwright cannot download its own browser here,
 * so the executable comes from CHROMIUM_PATH (default /usr/bin/chromium).
 * Without a GPU, WebGPU runs on Chromium's software adapter (SwiftShader); with `gpu` true the
 * real adapter is used through Vulkan.
 */
export function chromiumLaunchOptions(opts: { gpu?: boolean } = {}) {
  const gpu = opts.gpu ?? process.env.REASONING_LAB_GPU === '1';
  const common = [
    '--enable-unsafe-webgpu',
    '--no-sandbox',
    '--disable-background-networking',
    '--disable-component-update',
    '--disable-sync',
    '--no-first-run',
    '--disable-dev-shm-usage',
  ];
  const adapter = gpu ? ['--enable-features=Vulkan', '--ignore-gpu-blocklist'] : ['--enable-unsafe-swiftshader', '--use-webgpu-adapter=swiftshader'];
  return {
    executablePath: process.env.CHROMIUM_PATH ?? '/usr/bin/chromium',
    args: [...common, ...adapter],
  };
}
