/**
 * Training state that resumes exactly: the adapter's tensors, AdamW's per-tensor state, the number
 * of optimizer steps taken, and what determines every later draw (the order seed; dropout masks are
 * a stateless hash of (seed, step, micro-batch), engine/dropout.ts, so they carry no RNG state).
 * Serialised as JSON with each f32 array as base64 of its little-endian bytes, so a restore is
 * bit-identical.
 */
import type { AdapterModule } from '../formats/adapterFormat.ts';
import type { TrainableAdapter } from '../engine/referenceTraining.ts';
import type { AdamWTensorState } from './adamw.ts';
import type { AdapterSpec } from './init.ts';

export interface TrainingHyper {
  microBatch: number;
  gradAccum: number;
  lr: number;
  warmupSteps: number;
  totalSteps: number;
  shuffle: boolean;
  seed: number;
  beta1: number;
  beta2: number;
  eps: number;
  weightDecay: number;
  /** right-pad micro-batches to a multiple of this (finetune.py: 8) */
  padToMultipleOf: number;
}

export interface TrainerState {
  spec: AdapterSpec;
  hyper: TrainingHyper;
  /** optimizer steps taken */
  step: number;
  adapter: TrainableAdapter; // f32 tensors
  /** AdamW state by tensor name (see adapterTensorList) */
  optim: Map<string, AdamWTensorState>;
}

/** One trainable tensor by our record name `layers.N.<module>.<lora_A|lora_B|adapter_down|adapter_up>`. */
export interface NamedTensor {
  name: string;
  layer: number;
  module: AdapterModule;
  role: 'lora_A' | 'lora_B' | 'adapter_down' | 'adapter_up';
  data: Float32Array;
}

/** The adapter's tensors in a fixed order: layer, then module as stored, then A/B or down/up. */
export function adapterTensorList(a: TrainableAdapter): NamedTensor[] {
  const out: NamedTensor[] = [];
  a.layers.forEach((L, layer) => {
    for (const [module, m] of Object.entries(L) as Array<[AdapterModule, Record<string, Float32Array | Float64Array>]>) {
      const roles: Array<[string, NamedTensor['role']]> =
        a.kind === 'lora'
          ? [
              ['a', 'lora_A'],
              ['b', 'lora_B'],
            ]
          : [
              ['down', 'adapter_down'],
              ['up', 'adapter_up'],
            ];
      for (const [key, role] of roles) {
        const data = m[key];
        if (!(data instanceof Float32Array)) throw new Error(`layers.${layer}.${module}.${role} must be a Float32Array in trainer state`);
        out.push({ name: `layers.${layer}.${module}.${role}`, layer, module, role, data });
      }
    }
  });
  return out;
}

const B64 = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/';

export function bytesToBase64(bytes: Uint8Array): string {
  let s = '';
  for (let i = 0; i < bytes.length; i += 3) {
    const a = bytes[i];
    const b = i + 1 < bytes.length ? bytes[i + 1] : 0;
    const c = i + 2 < bytes.length ? bytes[i + 2] : 0;
    s += B64[a >> 2] + B64[((a & 3) << 4) | (b >> 4)];
    s += i + 1 < bytes.length ? B64[((b & 15) << 2) | (c >> 6)] : '=';
    s += i + 2 < bytes.length ? B64[c & 63] : '=';
  }
  return s;
}

export function base64ToBytes(s: string): Uint8Array {
  if (s.length % 4 !== 0) throw new Error('base64 length must be a multiple of 4');
  const pad = s.endsWith('==') ? 2 : s.endsWith('=') ? 1 : 0;
  const out = new Uint8Array((s.length / 4) * 3 - pad);
  let o = 0;
  for (let i = 0; i < s.length; i += 4) {
    const v = [0, 1, 2, 3].map((k) => (s[i + k] === '=' ? 0 : B64.indexOf(s[i + k])));
    if (v.some((x) => x < 0)) throw new Error(`invalid base64 character near offset ${i}`);
    const n = (v[0] << 18) | (v[1] << 12) | (v[2] << 6) | v[3];
    if (o < out.length) out[o++] = (n >> 16) & 255;
    if (o < out.length) out[o++] = (n >> 8) & 255;
    if (o < out.length) out[o++] = n & 255;
  }
  return out;
}

const f32ToB64 = (a: Float32Array) => bytesToBase64(new Uint8Array(a.buffer, a.byteOffset, a.byteLength));
const b64ToF32 = (s: string, n: number, what: string) => {
  const bytes = base64ToBytes(s);
  if (bytes.length !== n * 4) throw new Error(`checkpoint ${what} has ${bytes.length / 4} values, expected ${n}`);
  return new Float32Array(bytes.slice().buffer);
};

export const CHECKPOINT_FORMAT = 'reasoning-lab-training-state';

export function serializeTrainerState(s: TrainerState): string {
  const tensors = adapterTensorList(s.adapter).map((t) => {
    const o = s.optim.get(t.name);
    if (!o) throw new Error(`no optimizer state for ${t.name}`);
    return { name: t.name, n: t.data.length, data: f32ToB64(t.data), m: f32ToB64(o.m), v: f32ToB64(o.v), step: o.step };
  });
  const a = s.adapter;
  const shape = a.kind === 'lora' ? { kind: a.kind, r: a.r, scaling: a.scaling } : { kind: a.kind, bottleneckSize: a.bottleneckSize, activation: a.activation };
  const scalings = a.kind === 'lora' ? undefined : a.layers.map((L) => Object.fromEntries(Object.entries(L).map(([m, t]) => [m, t.scaling])));
  const modules = a.layers.map((L) => Object.keys(L));
  return JSON.stringify({ format: CHECKPOINT_FORMAT, version: 1, spec: s.spec, hyper: s.hyper, step: s.step, adapter: shape, modules, scalings, tensors });
}

export function parseTrainerState(text: string): TrainerState {
  let j: Record<string, unknown>;
  try {
    j = JSON.parse(text);
  } catch (e) {
    throw new Error(`training state is not valid JSON: ${(e as Error).message}`, { cause: e });
  }
  if (j.format !== CHECKPOINT_FORMAT || j.version !== 1)
    throw new Error(`not a training state (format ${JSON.stringify(j.format)}, version ${JSON.stringify(j.version)})`);
  const shape = j.adapter as { kind: TrainableAdapter['kind']; r?: number; scaling?: number; bottleneckSize?: number; activation?: string };
  const modules = j.modules as string[][];
  const scalings = j.scalings as Array<Record<string, number>> | undefined;
  const tensors = new Map((j.tensors as Array<{ name: string; n: number; data: string; m: string; v: string; step: number }>).map((t) => [t.name, t]));
  const optim = new Map<string, AdamWTensorState>();
  const take = (name: string) => {
    const t = tensors.get(name);
    if (!t) throw new Error(`training state lacks tensor ${name}`);
    optim.set(name, { m: b64ToF32(t.m, t.n, `${name} exp_avg`), v: b64ToF32(t.v, t.n, `${name} exp_avg_sq`), step: t.step });
    return b64ToF32(t.data, t.n, name);
  };
  const layers = modules.map((mods, l) =>
    Object.fromEntries(
      mods.map((m) =>
        shape.kind === 'lora'
          ? [m, { a: take(`layers.${l}.${m}.lora_A`), b: take(`layers.${l}.${m}.lora_B`) }]
          : [m, { down: take(`layers.${l}.${m}.adapter_down`), up: take(`layers.${l}.${m}.adapter_up`), scaling: scalings![l][m] }],
      ),
    ),
  );
  const adapter = (
    shape.kind === 'lora'
      ? { kind: 'lora', r: shape.r, scaling: shape.scaling, layers }
      : { kind: shape.kind, bottleneckSize: shape.bottleneckSize, activation: shape.activation, layers }
  ) as TrainableAdapter;
  return { spec: j.spec as AdapterSpec, hyper: j.hyper as TrainingHyper, step: j.step as number, adapter, optim };
}
