/** A trained adapter (trainer state) to PEFT's files, via src/formats/peftExport.ts. */
import type { LlamaConfig } from '../formats/llamaConfig.ts';
import { moduleFeatures } from '../formats/adapterFormat.ts';
import { exportPeftAdapter, peftTensorKey, type PeftExport, type PeftExportConfig } from '../formats/peftExport.ts';
import type { TrainableAdapter } from '../engine/referenceTraining.ts';
import { bottleneckFeatures, type AdapterSpec } from './init.ts';
import { adapterTensorList } from './checkpoint.ts';

/** `keys`: write only these PEFT keys (a run started from a PEFT adapter writes back the keys it read). */
export function exportTrainedAdapter(
  c: LlamaConfig,
  spec: AdapterSpec,
  adapter: TrainableAdapter,
  baseModelNameOrPath: string | null = null,
  keys?: ReadonlySet<string>,
): PeftExport {
  const cfg: PeftExportConfig =
    spec.kind === 'lora'
      ? { kind: 'lora', r: spec.r, alpha: spec.alpha, dropout: spec.dropout, targets: spec.targets }
      : {
          kind: spec.kind,
          bottleneckSize: spec.bottleneckSize,
          nonLinearity: spec.nonLinearity,
          dropout: spec.dropout,
          scaling: spec.scaling,
          targets: spec.targets,
          initWeights: spec.initWeights,
        };
  const tensors = adapterTensorList(adapter)
    .map((t) => {
      let shape: [number, number];
      if (spec.kind === 'lora') {
        const [inF, outF] = moduleFeatures(c, t.module);
        shape = t.role === 'lora_A' ? [spec.r, inF] : [outF, spec.r];
      } else {
        const [dIn, dOut] = bottleneckFeatures(c, spec.kind, t.module);
        shape = t.role === 'adapter_down' ? [spec.bottleneckSize, dIn] : [dOut, spec.bottleneckSize];
      }
      return { layer: t.layer, module: t.module, role: t.role, shape, data: t.data };
    })
    .filter((t) => !keys || keys.has(peftTensorKey(t.layer, t.module, t.role)));
  return exportPeftAdapter(cfg, tensors, { baseModelNameOrPath });
}
