/**
 * Known per-backend exclusions and tolerance factors, in one place, each with its reason.
 * A test asks `excluded(backend, id)` / `toleranceFactor(backend, id)` with a stable id string.
 */
export type Backend = 'cpu' | 'wasm' | 'webgpu';

export interface Exclusion {
  backend: Backend;
  /** Test id (exact) or prefix ending in '*'. */
  id: string;
  reason: string;
}

export interface ToleranceFactor {
  backend: Backend;
  id: string;
  factor: number;
  reason: string;
}

export const EXCLUSIONS: Exclusion[] = [
  {
    backend: 'webgpu',
    id: 'convit/tiny-224/nonlocality',
    reason:
      'SwiftShader WebGPU needs 2-4 minutes per 224-px attention-map pass over 12 layers (~0.07 GFLOP/s matmuls); ' +
      'nonlocality both ways is checked on webgpu with convit_micro (every layer), and at 224 px on cpu and wasm',
  },
  {
    backend: 'webgpu',
    id: 'convit/tiny-224/warm-forward',
    reason:
      'a second 224-px forward costs a minute on SwiftShader; the cached (eval) path is checked against the fixtures ' +
      'on webgpu with convit_micro and in the gpsa cache tests',
  },
  ...['femto', 'pico', 'nano', 'tiny'].map((size) => ({
    backend: 'webgpu' as const,
    id: `convnextv2/registry/convnextv2_${size}`,
    reason:
      'SwiftShader WebGPU runs one build + forward + backward + save/load of a ConvNeXt V2 in minutes; the sizes ' +
      'differ only in widths and depths, so convnextv2_atto covers the same kernels on webgpu (all sizes run on cpu and wasm)',
  })),
  ...['convit_small', 'convit_base', 'convit_tiny_plus', 'convit_small_plus', 'convit_small_deit', 'convit_base_deit'].map((name) => ({
    backend: 'webgpu' as const,
    id: `convit/registry/${name}`,
    reason:
      'each new head count and width costs SwiftShader seconds of shader compilation; on webgpu convit_tiny (4 heads), ' +
      'convit_tiny_deit (plain attention) and convit_base_plus (16 heads, "+" width) cover the same kernels (all run on cpu and wasm)',
  })),
  {
    backend: 'webgpu',
    id: 'convit/model/drop-path',
    reason:
      'the drop-path schedule and its train/eval semantics are arithmetic on the seeded mask, checked on cpu and wasm; ' +
      'webgpu trains with DropPath active in train/src/convit-fit.test.ts (26 s of SwiftShader saved)',
  },
  {
    backend: 'webgpu',
    id: 'convit/mutation',
    reason:
      'mutation tests pin the cpu/wasm tolerance (the fixture\'s suggested_atol, no factor): webgpu compares with a looser ' +
      'factor (TOLERANCE_FACTORS), and the same model code is mutated on cpu and wasm',
  },
  {
    backend: 'webgpu',
    id: 'convnextv2/mutation',
    reason:
      'mutation tests pin the cpu/wasm tolerance (the fixture\'s suggested_atol, no factor): webgpu compares with a looser ' +
      'factor (TOLERANCE_FACTORS), and the same model code is mutated on cpu and wasm',
  },
];

export const TOLERANCE_FACTORS: ToleranceFactor[] = [];

function matches(pattern: string, id: string): boolean {
  return pattern.endsWith('*') ? id.startsWith(pattern.slice(0, -1)) : pattern === id;
}

export function exclusionFor(backend: Backend, id: string): Exclusion | undefined {
  return EXCLUSIONS.find((e) => e.backend === backend && matches(e.id, id));
}

export function toleranceFactor(backend: Backend, id: string): number {
  return TOLERANCE_FACTORS.find((t) => t.backend === backend && matches(t.id, id))?.factor ?? 1;
}
