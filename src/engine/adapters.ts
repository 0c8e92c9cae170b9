/**
 * Adapters on the GPU: a converted adapter (src/formats/adapterFormat.ts) becomes, per layer, one
 * "site" per fused linear it touches (qkv, o, gate_up, down). Each site's modules are stacked so a
 * site costs at most two small dispatches whatever it targets: one down-projection for every
 * segment (q | k | v, or gate | up) and one up-projection that lands each segment on its rows.
 * Untargeted segments are zero, which leaves their rows unchanged. In mode 'add' the
 * up-projection is no dispatch of its own: the base matmul adds it as it writes its output
 * (adapterAdd.wgsl), so such a site costs one extra dispatch; series sites keep adapterUp.wgsl.
 *
 *   LoRA:      y = W x + (alpha / r) B (A x)                      (mode 'add', act none)
 *   parallel:  y = W x + s up(act(down x))                         (mode 'add')
 *   series:    gate/up: y = W (x + s up(act(down x)))              (mode 'seriesInput')
 *              down:    y = W x; y = y + s up(act(down y))          (mode 'seriesOutput')
 */
import type { LlamaConfig } from '../formats/llamaConfig.ts';
import type { AdapterManifest, AdapterModule, AdapterActivation } from '../formats/adapterFormat.ts';
import { createBufferChecked } from './gpu.ts';
import { EngineError } from './errors.ts';

export type SiteName = 'qkv' | 'o' | 'gateUp' | 'down';
export type SiteMode = 'add' | 'seriesInput' | 'seriesOutput';

export interface AdapterSite {
  mode: SiteMode;
  inDim: number; // width of the down-projection's input
  r: number; // bottleneck width per segment
  segments: number;
  seg1: number; // first stacked output row of segment 1 (n when absent)
  seg2: number;
  n: number; // stacked output rows of the up-projection
  down: GPUBuffer; // [segments * r, inDim] f32
  up: GPUBuffer; // [n, r] f32
  scales: GPUBuffer; // [3] f32, per segment
}

export interface GpuAdapter {
  name: string;
  kind: AdapterManifest['kind'];
  act: number; // ACT override of activation.wgsl
  layers: Partial<Record<SiteName, AdapterSite>>[];
  buffers: GPUBuffer[];
  bytes: number;
}

export const ACT_CODE: Record<AdapterActivation | 'none', number> = { none: 0, tanh: 1, relu: 2, silu: 3, gelu: 4 };

/** Which modules share a site, in segment order. */
const SITE_MODULES: Record<SiteName, AdapterModule[]> = {
  qkv: ['q_proj', 'k_proj', 'v_proj'],
  o: ['o_proj'],
  gateUp: ['gate_proj', 'up_proj'],
  down: ['down_proj'],
};

export async function createGpuAdapter(device: GPUDevice, c: LlamaConfig, manifest: AdapterManifest, tensors: Map<string, Float32Array>): Promise<GpuAdapter> {
  const d = c.hiddenSize;
  const ffn = c.intermediateSize;
  const qOut = c.numHeads * c.headDim;
  const kvOut = c.numKvHeads * c.headDim;
  const isLora = manifest.kind === 'lora';
  const r = isLora ? manifest.lora!.r : manifest.bottleneck!.bottleneckSize;
  const act = isLora ? ACT_CODE.none : ACT_CODE[manifest.bottleneck!.nonLinearity];
  const buffers: GPUBuffer[] = [];
  let bytes = 0;
  const upload = async (what: string, data: Float32Array) => {
    const b = await createBufferChecked(device, what, data.byteLength, GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_DST);
    device.queue.writeBuffer(b, 0, data as Float32Array<ArrayBuffer>);
    buffers.push(b);
    bytes += b.size;
    return b;
  };
  const tensor = (layer: number, module: AdapterModule, role: string, len: number): Float32Array => {
    const name = `layers.${layer}.${module}.${role}`;
    const t = tensors.get(name);
    if (!t) throw new EngineError(`Adapter ${manifest.name} lacks tensor ${name}.`);
    if (t.length !== len) throw new EngineError(`Adapter tensor ${name} has ${t.length} values, expected ${len}.`);
    return t;
  };
  const scaleOf = (layer: number, module: AdapterModule) =>
    isLora ? manifest.lora!.scaling : manifest.bottleneck!.scales[layer][manifest.targets.indexOf(module)];
  // Features (in, out) of a module and, per site, the widths of its stacked output segments.
  const features: Record<AdapterModule, [number, number]> = {
    q_proj: [d, qOut],
    k_proj: [d, kvOut],
    v_proj: [d, kvOut],
    o_proj: [qOut, d],
    gate_proj: [d, ffn],
    up_proj: [d, ffn],
    down_proj: [ffn, d],
  };

  try {
    const layers: GpuAdapter['layers'] = [];
    for (let l = 0; l < c.numLayers; l++) {
      const sites: Partial<Record<SiteName, AdapterSite>> = {};
      for (const site of Object.keys(SITE_MODULES) as SiteName[]) {
        const modules = SITE_MODULES[site];
        if (!modules.some((m) => manifest.targets.includes(m))) continue;
        let mode: SiteMode = 'add';
        if (manifest.kind === 'series') mode = site === 'down' ? 'seriesOutput' : site === 'gateUp' ? 'seriesInput' : 'add';
        if (manifest.kind === 'series' && (site === 'qkv' || site === 'o'))
          throw new EngineError(`Series adapters on ${modules.join('/')} are not supported (LLM-Adapters has none there).`);
        // Down-projection input width and each segment's (down input, up output) widths.
        const [inDim] = mode === 'seriesOutput' ? [d] : features[modules[0]];
        const segOut = modules.map((m) => (mode === 'seriesInput' ? d : mode === 'seriesOutput' ? d : features[m][1]));
        const n = segOut.reduce((a, b) => a + b, 0);
        const down = new Float32Array(modules.length * r * inDim);
        const up = new Float32Array(n * r);
        const scales = new Float32Array(3);
        let row0 = 0;
        modules.forEach((m, s) => {
          if (manifest.targets.includes(m)) {
            const downName = isLora ? 'lora_A' : 'adapter_down';
            const upName = isLora ? 'lora_B' : 'adapter_up';
            down.set(tensor(l, m, downName, r * inDim), s * r * inDim);
            up.set(tensor(l, m, upName, segOut[s] * r), row0 * r);
            scales[s] = scaleOf(l, m);
          }
          row0 += segOut[s];
        });
        sites[site] = {
          mode,
          inDim,
          r,
          segments: modules.length,
          seg1: modules.length > 1 ? segOut[0] : n,
          seg2: modules.length > 2 ? segOut[0] + segOut[1] : n,
          n,
          down: await upload(`adapter ${manifest.name} layer ${l} ${site} down`, down),
          up: await upload(`adapter ${manifest.name} layer ${l} ${site} up`, up),
          scales: await upload(`adapter ${manifest.name} layer ${l} ${site} scales`, scales),
        };
      }
      layers.push(sites);
    }
    return { name: manifest.name, kind: manifest.kind, act, layers, buffers, bytes };
  } catch (e) {
    for (const b of buffers) b.destroy();
    throw e;
  }
}

/** Widest z row any site of the adapter needs (segments * r). */
export function adapterZWidth(a: GpuAdapter): number {
  let w = 0;
  for (const sites of a.layers) for (const s of Object.values(sites)) w = Math.max(w, s!.segments * s!.r);
  return w;
}
