/**
 * AdamW exactly as torch.optim.AdamW's single-tensor path (pytorch/pytorch torch/optim/adamw.py
 * @002d2f0, _single_tensor_adamw, amsgrad=False, maximize=False), as a function over f32 arrays so a
 * GPU kernel can be checked against it element by element:
 *
 *   step += 1                                   (state["step"] starts at 0: the first update uses t = 1)
 *   p  = p · (1 − lr·wd)                        ("stepweight decay", before the moments, on the old p)
 *   m  = lerp(m, g, 1 − β1)  = m + (1−β1)(g − m)
 *   v  = v·β2 + (1 − β2)·g·g
 *   bc1 = 1 − β1^t;  bc2 = 1 − β2^t;  step_size = lr / bc1
 *   denom = sqrt(v) / sqrt(bc2) + eps           (eps added to sqrt(v̂), not inside the root)
 *   p  = p − step_size · m / denom
 *
 * Rounding: the tensors are f32 and every tensor op's result is rounded to f32 (Math.fround), the
 * Python scalars (bc1, bc2, step_size, 1 − lr·wd) are f64 and cast to f32 where the op takes them.
 * (torch's CPU kernels may contract a·b + c into an FMA; a kernel compared with this should allow
 * an ulp or two per step.)
 *
 * Defaults are transformers' TrainingArguments (adam_beta1 0.9, adam_beta2 0.999, adam_epsilon 1e-8,
 * weight_decay 0.0: LLM-Adapters' finetune.py sets none of them; torch's own default weight_decay is
 * 0.01, which the Trainer overrides with its 0.0).
 */

export interface AdamWHyper {
  lr: number;
  beta1: number;
  beta2: number;
  eps: number;
  weightDecay: number;
}

export const TRAINER_ADAMW_DEFAULTS: Omit<AdamWHyper, 'lr'> = { beta1: 0.9, beta2: 0.999, eps: 1e-8, weightDecay: 0 };

/** Optimizer state of one parameter tensor: torch's state["exp_avg"], state["exp_avg_sq"], state["step"]. */
export interface AdamWTensorState {
  m: Float32Array;
  v: Float32Array;
  /** updates applied so far (torch's state["step"] before this update) */
  step: number;
}

export function adamwInitState(n: number): AdamWTensorState {
  return { m: new Float32Array(n), v: new Float32Array(n), step: 0 };
}

/**
 * One AdamW update of `param` in place (and of state.m, state.v, state.step). `grad` may be f64
 * (the reference's gradients); it is rounded to f32 first, as a torch f32 .grad would hold it.
 */
export function adamwStep(param: Float32Array, grad: Float32Array | Float64Array, state: AdamWTensorState, h: AdamWHyper): void {
  const n = param.length;
  if (grad.length !== n || state.m.length !== n || state.v.length !== n) {
    throw new Error(`adamwStep: param has ${n} values, grad ${grad.length}, exp_avg ${state.m.length}, exp_avg_sq ${state.v.length}`);
  }
  const f = Math.fround;
  state.step += 1;
  const t = state.step;
  const decay = f(1 - h.lr * h.weightDecay);
  const w1 = f(1 - h.beta1);
  const b2 = f(h.beta2);
  const w2 = f(1 - h.beta2);
  const bc1 = 1 - Math.pow(h.beta1, t);
  const bc2 = 1 - Math.pow(h.beta2, t);
  const negStepSize = f(-(h.lr / bc1));
  const bc2Sqrt = f(Math.sqrt(bc2));
  const eps = f(h.eps);
  const { m, v } = state;
  for (let i = 0; i < n; i++) {
    const g = f(grad[i]);
    const p = f(param[i] * decay);
    const mi = f(m[i] + f(w1 * f(g - m[i])));
    const vi = f(f(v[i] * b2) + f(f(w2 * g) * g));
    const denom = f(f(f(Math.sqrt(vi)) / bc2Sqrt) + eps);
    m[i] = mi;
    v[i] = vi;
    param[i] = f(p + f(negStepSize * f(mi / denom)));
  }
}
