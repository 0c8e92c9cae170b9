/**
 * WebGPU device setup: ask for the adapter's own limits (a 7B model needs buffers far larger than
 * the defaults), record which optional features exist, and turn device loss into a clear error.
 */
import { BufferLimitError, DeviceLostError, GPUOutOfMemoryError, WebGPUUnavailableError } from './errors.ts';

export interface GpuContext {
  device: GPUDevice;
  adapterInfo: string;
  hasF16: boolean;
  hasSubgroups: boolean;
  /**
   * A CPU-emulated adapter (SwiftShader): workgroup barriers cost there what memory reads cost on
   * a GPU, so the engine keeps its one-thread-per-row kernels on it.
   */
  isSoftware: boolean;
  /** Set once the device is lost; every later call fails with it. */
  lost: DeviceLostError | null;
  onLost: ((err: DeviceLostError) => void)[];
}

/** A GPU object given by the host where there is no navigator.gpu (Node with Dawn's bindings: the device kit). */
let providedGpu: GPU | null = null;

/**
 * Make every later createGpuContext() without an argument use `gpu` (null: navigator.gpu again).
 * The engine creates its context itself, so a host without navigator.gpu registers its GPU here.
 */
export function provideGpu(gpu: GPU | null): void {
  providedGpu = gpu;
}

export async function createGpuContext(given?: GPU): Promise<GpuContext> {
  const gpu = given ?? providedGpu ?? (globalThis.navigator as Navigator | undefined)?.gpu;
  if (!gpu) throw new WebGPUUnavailableError('navigator.gpu is missing; WebGPU also needs a secure context (https or localhost)');
  const adapter = await gpu.requestAdapter({ powerPreference: 'high-performance' });
  if (!adapter) throw new WebGPUUnavailableError('no GPU adapter was found');
  const hasF16 = adapter.features.has('shader-f16');
  const hasSubgroups = adapter.features.has('subgroups');
  const requiredFeatures: GPUFeatureName[] = [];
  if (hasF16) requiredFeatures.push('shader-f16');
  if (hasSubgroups) requiredFeatures.push('subgroups' as GPUFeatureName);
  // Lets a profiler time passes (the device kit's per-kernel profile); the engine itself never writes timestamps.
  if (adapter.features.has('timestamp-query')) requiredFeatures.push('timestamp-query');
  const l = adapter.limits;
  const device = await adapter.requestDevice({
    requiredFeatures,
    requiredLimits: {
      maxStorageBufferBindingSize: l.maxStorageBufferBindingSize,
      maxBufferSize: l.maxBufferSize,
      maxComputeWorkgroupStorageSize: l.maxComputeWorkgroupStorageSize,
      maxComputeInvocationsPerWorkgroup: l.maxComputeInvocationsPerWorkgroup,
      maxComputeWorkgroupSizeX: l.maxComputeWorkgroupSizeX,
      maxStorageBuffersPerShaderStage: l.maxStorageBuffersPerShaderStage,
    },
  });
  const info = adapter.info;
  const ctx: GpuContext = {
    device,
    adapterInfo: [info?.vendor, info?.architecture, info?.device, info?.description].filter(Boolean).join(' ') || 'unknown adapter',
    hasF16,
    hasSubgroups,
    isSoftware:
      Boolean((info as { isFallbackAdapter?: boolean } | undefined)?.isFallbackAdapter) ||
      /swiftshader|llvmpipe|lavapipe/i.test(`${info?.vendor} ${info?.architecture} ${info?.device} ${info?.description}`),
    lost: null,
    onLost: [],
  };
  // The engine never destroys its device (unload frees buffers only), so any loss is real.
  void device.lost.then((e) => {
    ctx.lost = new DeviceLostError(e.reason, e.message);
    for (const f of ctx.onLost) f(ctx.lost);
  });
  return ctx;
}

/**
 * Refuse a buffer the device could never hold, before anything is allocated: over maxBufferSize
 * createBuffer fails validation, and a storage buffer over maxStorageBufferBindingSize is made
 * but cannot be bound, so every dispatch using it would fail later and far from the cause.
 */
export function checkBufferLimits(limits: GPUSupportedLimits, what: string, size: number, usage: GPUBufferUsageFlags): void {
  const bytes = Math.max(4, alignTo(size, 4));
  if (usage & GPUBufferUsage.STORAGE && bytes > limits.maxStorageBufferBindingSize)
    throw new BufferLimitError(what, bytes, 'maxStorageBufferBindingSize', limits.maxStorageBufferBindingSize);
  if (bytes > limits.maxBufferSize) throw new BufferLimitError(what, bytes, 'maxBufferSize', limits.maxBufferSize);
}

/** Allocate a buffer within the device's limits, turning an out-of-memory validation into a readable error. */
export async function createBufferChecked(device: GPUDevice, what: string, size: number, usage: GPUBufferUsageFlags): Promise<GPUBuffer> {
  checkBufferLimits(device.limits, what, size, usage);
  device.pushErrorScope('out-of-memory');
  device.pushErrorScope('validation');
  const buf = device.createBuffer({ size: Math.max(4, alignTo(size, 4)), usage, label: what });
  const validation = await device.popErrorScope();
  const oom = await device.popErrorScope();
  if (oom || validation) {
    buf.destroy();
    if (oom) throw new GPUOutOfMemoryError(what, size);
    throw new GPUOutOfMemoryError(`${what} (${validation!.message})`, size);
  }
  return buf;
}

export function alignTo(n: number, a: number): number {
  return Math.ceil(n / a) * a;
}

/**
 * A failed GPU call (mapAsync rejecting, say) is often the first sign of a lost device, before
 * device.lost has settled: give it a moment, and report the loss in its own words if that was it.
 */
export async function explainGpuFailure(ctx: GpuContext, e: unknown): Promise<unknown> {
  if (!ctx.lost) await Promise.race([ctx.device.lost, new Promise((r) => setTimeout(r, 250))]);
  await Promise.resolve();
  return ctx.lost ?? e;
}
