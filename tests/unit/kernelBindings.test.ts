import { describe, it, expect } from 'vitest';
import { BINDINGS, KERNELS, kernelSource, type KernelName, type KernelVariant } from '../../src/engine/kernels.ts';

/** The variants the engine compiles, per kernel (each declares a different set of bindings). */
function variants(name: KernelName): KernelVariant[] {
  const weights = ['f32', 'f16', 'q4f16', 'q4f32'] as const;
  switch (name) {
    case 'embedding':
    case 'matmulBackInput':
      return weights.map((weight) => ({ weight }));
    case 'normMatmul':
      // With a KV format: the qkv epilogue (RoPE + KV write, group 2).
      return weights.flatMap((weight) => [{ weight }, { weight, kv: 'f32' as const }, { weight, kv: 'f16' as const }]);
    case 'matmul':
    case 'matmulTiled':
      return weights.flatMap((weight) => [{ weight }, { weight, adapterAdd: true }]);
    case 'q4MatVec':
      return (['q4f16', 'q4f32'] as const).flatMap((weight) =>
        [false, true].flatMap((subgroups) => [
          { weight, subgroups },
          { weight, subgroups, adapterAdd: true },
        ]),
      );
    case 'normQ4MatVec':
      return (['q4f16', 'q4f32'] as const).flatMap((weight) =>
        [false, true].flatMap((subgroups) => [
          { weight, subgroups },
          { weight, subgroups, kv: 'f32' as const },
          { weight, subgroups, kv: 'f16' as const },
        ]),
      );
    case 'ropeKvWrite':
    case 'attnScores':
    case 'attnOutput':
    case 'attention':
      return [{ kv: 'f32' }, { kv: 'f16' }];
    default:
      return [{}];
  }
}

const count = (code: string, word: string) => code.match(new RegExp(`\\b${word}\\b`, 'g'))?.length ?? 0;

/** The source without comments and without the functions nothing calls (a snippet's kAt in a kernel reading only v). */
function liveCode(source: string): string {
  let code = source.replace(/\/\/.*$/gm, '');
  for (let changed = true; changed;) {
    changed = false;
    for (const m of code.matchAll(/\bfn\s+(\w+)\s*\(/g)) {
      if (m[1] === 'main' || count(code, m[1]) > 1) continue;
      let i = code.indexOf('{', m.index);
      for (let depth = 0; ; i++) {
        if (code[i] === '{') depth++;
        if (code[i] === '}' && --depth === 0) break;
      }
      code = code.slice(0, m.index) + code.slice(i + 1);
      changed = true;
      break;
    }
  }
  return code;
}

/**
 * Bindings a WGSL source declares AND uses (an 'auto' layout leaves out the unused ones), by
 * variable name: "group.binding".
 */
function usedBindings(source: string): Map<string, string> {
  const code = liveCode(source);
  const out = new Map<string, string>();
  for (const m of code.matchAll(/@group\((\d+)\)\s*@binding\((\d+)\)\s*var(?:<[^>]*>)?\s+(\w+)/g)) {
    if (count(code, m[3]) > 1) out.set(m[3], `${m[1]}.${m[2]}`);
  }
  return out;
}

describe('kernel binding table (kernels.ts BINDINGS) against the WGSL sources', () => {
  for (const name of Object.keys(KERNELS) as KernelName[]) {
    it(`${name}: every binding its variants use is in the table at the same group and index, and nothing else is`, () => {
      const table = new Map<string, string>();
      for (const [group, slots] of Object.entries(BINDINGS[name] as Record<string, Record<string, number>>)) {
        for (const [binding, index] of Object.entries(slots)) table.set(binding, `${group}.${index}`);
      }
      const seen = new Map<string, string>();
      for (const v of variants(name)) {
        for (const [binding, at] of usedBindings(kernelSource(name, v))) {
          expect(table.get(binding), `${name} ${JSON.stringify(v)}: ${binding}`).toBe(at);
          seen.set(binding, at);
        }
      }
      expect(new Map([...seen].sort())).toEqual(new Map([...table].sort()));
    });
  }
});
