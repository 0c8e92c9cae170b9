/**
 * PEFT export (src/formats/peftExport.ts via src/training/export.ts): the written folder parses back
 * through the existing PEFT reader (convertPeftAdapter + readAdapterTensors in src/formats/adapter.ts)
 * to the same tensors, and the converted adapter runs in reference.ts exactly as it trained.
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { convertPeftAdapter } from '../../src/formats/adapterConversion.ts';
import { readAdapterTensors } from '../../src/formats/adapterFormat.ts';
import { parseSafetensorsHeader } from '../../src/formats/safetensors.ts';
import { syntheticModelSource } from '../../src/formats/syntheticModel.ts';
import { ReferenceLlama, referenceAdapterFromManifest } from '../../src/engine/reference.ts';
import { trainingForward } from '../../src/engine/referenceTraining.ts';
import { exportPeftAdapter, peftTensorKey } from '../../src/formats/peftExport.ts';
import { exportTrainedAdapter } from '../../src/training/export.ts';
import { adapterTensorList } from '../../src/training/checkpoint.ts';
import { createTrainerState, defaultHyper, trainStep } from '../../src/training/referenceTrainer.ts';
import type { AdapterSpec } from '../../src/training/init.ts';
import { syntheticWeights, tinyConfig } from './trainingFixtures.ts';

const c = tinyConfig();
const SPECS: AdapterSpec[] = [
  { kind: 'lora', r: 4, alpha: 8, targets: ['q_proj', 'k_proj', 'v_proj', 'up_proj', 'down_proj'], dropout: 0.05 },
  { kind: 'series', bottleneckSize: 6, nonLinearity: 'tanh', targets: ['up_proj', 'gate_proj', 'down_proj'], dropout: 0, scaling: 1 },
  { kind: 'parallel', bottleneckSize: 5, nonLinearity: 'relu', targets: ['up_proj', 'down_proj', 'o_proj'], dropout: 0.1, scaling: 0.5 },
];

describe('PEFT export round trip', () => {
  for (const spec of SPECS) {
    it(`${spec.kind}: folder -> existing PEFT reader -> the same tensors, the same model`, async () => {
      const weights = await syntheticWeights(c, 'q0f32', 2);
      const state = createTrainerState(c, spec, defaultHyper({ microBatch: 2, gradAccum: 1, lr: 5e-2, warmupSteps: 0, totalSteps: 5, shuffle: false }));
      const data = [
        { inputIds: [1, 5, 9, 13, 5, 9], labels: [1, 5, 9, 13, 5, 9] },
        { inputIds: [1, 7, 3], labels: [1, 7, 3] },
      ];
      for (let i = 0; i < 3; i++) trainStep({ config: c, weights }, data, state); // non-zero B / up
      const out = exportTrainedAdapter(c, spec, state.adapter, 'meta-llama/Llama-2-7b-hf');

      const dir = mkdtempSync(join(tmpdir(), 'peft-export-'));
      try {
        writeFileSync(join(dir, 'adapter_config.json'), out.adapterConfigJson);
        writeFileSync(join(dir, 'adapter_model.safetensors'), out.adapterWeights);
        const cfgText = readFileSync(join(dir, 'adapter_config.json'), 'utf8');
        const weightBytes = new Uint8Array(readFileSync(join(dir, 'adapter_model.safetensors')));

        const cfg = JSON.parse(cfgText);
        expect(cfg.peft_type).toBe(spec.kind === 'lora' ? 'LORA' : 'BOTTLENECK');
        expect(cfg.target_modules).toEqual(spec.targets);
        if (spec.kind !== 'lora') {
          expect(cfg.bottleneck_size).toBe(spec.bottleneckSize);
          expect(cfg.non_linearity).toBe(spec.nonLinearity);
          expect(cfg.use_parallel_adapter).toBe(spec.kind === 'parallel');
          expect(cfg.adapter_dropout).toBe(spec.dropout);
          expect(cfg.scaling).toBe(spec.scaling);
        } else {
          expect([cfg.r, cfg.lora_alpha, cfg.lora_dropout]).toEqual([4, 8, 0.05]);
        }
        const header = parseSafetensorsHeader(weightBytes);
        const ours = adapterTensorList(state.adapter);
        expect(header.tensors.size).toBe(ours.length);
        expect(header.metadata).toEqual({ format: 'pt' });
        for (const t of ours) {
          const info = header.tensors.get(peftTensorKey(t.layer, t.module, t.role));
          expect(info, t.name).toBeDefined();
          expect(info!.dtype).toBe('F32');
        }
        expect(header.tensors.has('base_model.model.model.layers.1.self_attn.q_proj.lora_A.weight') || spec.kind !== 'lora').toBe(true);
        expect(header.tensors.has('base_model.model.model.layers.0.mlp.up_proj.adapter_down.weight') || spec.kind === 'lora').toBe(true);

        // the existing reader
        const source = syntheticModelSource(c, 'q0f32', 2);
        const converted = await convertPeftAdapter({
          adapterConfig: cfgText,
          adapterWeights: weightBytes,
          baseChatConfig: await source.readJson('mlc-chat-config.json'),
          baseTensorCache: await source.readJson('tensor-cache.json'),
          dtype: 'float32',
        });
        expect(converted.manifest.kind).toBe(spec.kind);
        expect([...converted.manifest.targets].sort()).toEqual([...spec.targets].sort());
        const back = await readAdapterTensors(converted.manifest, converted.shards);
        expect(back.size).toBe(ours.length);
        for (const t of ours) {
          const got = back.get(t.name);
          expect(got, t.name).toBeDefined();
          expect(new Uint32Array(got!.buffer, got!.byteOffset, got!.length)).toEqual(new Uint32Array(t.data.buffer, t.data.byteOffset, t.data.length));
        }
        if (spec.kind === 'lora') expect(converted.manifest.lora!.scaling).toBe(2);
        else expect(converted.manifest.bottleneck!.scales.flat().every((s) => s === spec.scaling)).toBe(true);

        // the converted adapter in reference.ts = the trained adapter in the training forward
        const ref = new ReferenceLlama(c, weights, referenceAdapterFromManifest(converted.manifest, back));
        const seq = [1, 5, 9, 13, 2, 7];
        const refLogits = ref.forwardAll(seq);
        const train = trainingForward(c, weights, state.adapter, { inputIds: [seq], labels: [seq] });
        for (let t = 0; t < seq.length; t++) {
          for (let j = 0; j < c.vocabSize; j++) expect(Math.abs(train.logits[t * c.vocabSize + j] - refLogits[t][j])).toBeLessThan(1e-4);
        }
      } finally {
        rmSync(dir, { recursive: true, force: true });
      }
    });
  }

  it('refuses tensors that do not fit the config, by key', () => {
    const cfg = { kind: 'lora' as const, r: 2, alpha: 4, dropout: 0, targets: ['q_proj' as const] };
    expect(() => exportPeftAdapter(cfg, [{ layer: 0, module: 'v_proj', role: 'lora_A', shape: [2, 16], data: new Float32Array(32) }])).toThrow(
      /v_proj is not among target_modules/,
    );
    expect(() => exportPeftAdapter(cfg, [{ layer: 0, module: 'q_proj', role: 'lora_A', shape: [3, 16], data: new Float32Array(48) }])).toThrow(
      /does not have r = 2/,
    );
    expect(() => exportPeftAdapter(cfg, [{ layer: 0, module: 'q_proj', role: 'adapter_up', shape: [16, 2], data: new Float32Array(32) }])).toThrow(
      /lora adapter has no adapter_up/,
    );
  });
});
