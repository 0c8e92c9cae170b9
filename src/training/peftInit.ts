/**
 * Starting a run from a PEFT adapter's weights and config (the CLI's --init, the app's "start from
 * an adapter"): the files go through the one PEFT reader (convertPeftAdapter, checked against the
 * base: every bad key, shape or layer count is refused by name), then become trainable f32 tensors
 * and the AdapterSpec that exports the same config back.
 *
 * Which keys come back: exactly the checkpoint's. A PEFT adapter that skips layers
 * (layers_to_transform) converts with zero lora_B / adapter_up *and* zero A / down there; such a
 * module gets zero gradients (both factors are zero), so it stays zero and is left out of the
 * export again (`keys`).
 */
import { ADAPTER_MODULES, type AdapterModule } from '../formats/adapterFormat.ts';
import { convertPeftAdapter } from '../formats/adapterConversion.ts';
import { readAdapterTensors } from '../formats/adapterFormat.ts';
import { parseSafetensorsHeader } from '../formats/safetensors.ts';
import { peftTensorKey } from '../formats/peftExport.ts';
import type { TrainableAdapter } from '../engine/referenceTraining.ts';
import type { AdapterSpec } from './init.ts';
import { validateAdapterSpec } from './init.ts';

export interface PeftInit {
  spec: AdapterSpec;
  adapter: TrainableAdapter;
  /** the PEFT keys the checkpoint had (export writes these and no others) */
  keys: Set<string>;
  baseModelNameOrPath: string | null;
}

export class PeftInitError extends Error {
  override name = 'PeftInitError';
}

export async function peftInit(input: {
  adapterConfig: unknown;
  adapterWeights: Uint8Array;
  adapterWeightsFile?: 'adapter_model.safetensors' | 'adapter_model.bin';
  baseChatConfig: unknown;
  baseTensorCache: unknown;
}): Promise<PeftInit> {
  const { manifest, shards } = await convertPeftAdapter({ ...input, dtype: 'float32' });
  const tensors = await readAdapterTensors(manifest, shards);
  const cfg = manifest.source.config as Record<string, unknown>;
  // target_modules in the config's own order when it is a plain list of our module names
  const listed = Array.isArray(cfg.target_modules) ? (cfg.target_modules as unknown[]) : null;
  const targets: AdapterModule[] =
    listed && listed.every((m) => typeof m === 'string' && (ADAPTER_MODULES as readonly string[]).includes(m)) && listed.length === manifest.targets.length
      ? (listed as AdapterModule[])
      : manifest.targets;
  const numDropout = (x: unknown) => (typeof x === 'number' && Number.isFinite(x) ? x : 0);
  let spec: AdapterSpec;
  if (manifest.kind === 'lora') {
    const l = manifest.lora!;
    if (l.rslora) throw new PeftInitError('--init: use_rslora adapters cannot be trained here (the trainer scales LoRA by lora_alpha / r)');
    spec = { kind: 'lora', r: l.r, alpha: l.alpha, dropout: numDropout(cfg.lora_dropout), targets };
  } else {
    const b = manifest.bottleneck!;
    if (b.scaling === 'learned')
      throw new PeftInitError('--init: a bottleneck adapter with scaling "learned" cannot be trained here (only a fixed float scaling)');
    const initWeights = cfg.init_weights === 'mam_adapter' || cfg.init_weights === 'bert' ? cfg.init_weights : undefined;
    spec = {
      kind: manifest.kind,
      bottleneckSize: b.bottleneckSize,
      nonLinearity: b.nonLinearity,
      dropout: numDropout(cfg.adapter_dropout),
      scaling: b.scaling,
      targets,
      ...(initWeights ? { initWeights } : {}),
    };
  }
  validateAdapterSpec(spec);
  const layers = Array.from({ length: manifest.base.numLayers }, (_, l) =>
    Object.fromEntries(
      targets.map((m) => {
        const get = (role: string) => {
          const t = tensors.get(`layers.${l}.${m}.${role}`);
          if (!t) throw new PeftInitError(`--init: converted adapter lacks layers.${l}.${m}.${role}`);
          return t;
        };
        return spec.kind === 'lora'
          ? [m, { a: get('lora_A'), b: get('lora_B') }]
          : [m, { down: get('adapter_down'), up: get('adapter_up'), scaling: spec.scaling }];
      }),
    ),
  );
  const adapter = (
    spec.kind === 'lora'
      ? { kind: 'lora', r: spec.r, scaling: manifest.lora!.scaling, layers }
      : { kind: spec.kind, bottleneckSize: spec.bottleneckSize, activation: spec.nonLinearity, layers }
  ) as TrainableAdapter;
  let keys: Set<string>;
  if (input.adapterWeightsFile === 'adapter_model.bin') {
    // convertPeftAdapter has checked every key; the pickled file's own key list is the converted one
    keys = new Set([...tensors.keys()].map((n) => n.split('.')).map(([, l, m, role]) => peftTensorKey(Number(l), m as AdapterModule, role as never)));
  } else {
    keys = new Set(parseSafetensorsHeader(input.adapterWeights).tensors.keys());
  }
  return { spec, adapter, keys, baseModelNameOrPath: manifest.source.baseModelNameOrPath };
}
