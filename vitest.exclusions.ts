/**
 * Every per-backend exclusion, reduction and tolerance factor, in one place, each with its reason.
 * - EXCLUSIONS: a test (or a family of tests) skipped on a backend: `it.skipIf(excludedHere(id))`; counted by
 *   `npm test` as skipped.
 * - REDUCTIONS: a test that runs on a backend with less work (a smaller batch, fewer variants):
 *   `reducedHere(id)`; `npm test` lists the reductions that applied.
 * - TOLERANCE_FACTORS: fixture comparisons looser than the fixture's own `suggested_atol` on a backend. None on
 *   cpu or wasm.
 * Every id must be used by a spec (test-utils/exclusions.pure.test.ts checks it).
 */
export type Backend = 'cpu' | 'wasm' | 'webgpu';

export interface Exclusion {
  backend: Backend;
  /** Test id (exact) or prefix ending in '*'. */
  id: string;
  reason: string;
}

/** A test that runs with less work on `backend` (same checks, smaller problem). */
export interface Reduction {
  backend: Backend;
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
    id: 'web/finetune/abort-resume',
    reason:
      "two more fine-tuning runs cost ~20 s of shader work on SwiftShader; aborting and resuming through the storage adapter is " +
      "backend-independent code (fit's checkpoints), checked bit for bit on cpu and wasm and in Chromium's page by the e2e",
  },
  {
    backend: 'webgpu',
    id: 'web/finetune/checkpoint-base',
    reason:
      'four fine-tuning runs (a ConViT and a ConvNeXt V2) cost tens of seconds of shader work on SwiftShader; starting from a ' +
      "checkpoint is backend-independent code (loading, a new head, the input conversion); fit's numerics on webgpu are checked by " +
      'the first fine-tune spec and the e2e WebGPU pass',
  },
  {
    backend: 'webgpu',
    id: 'cli/train-pretrained/fine-tune',
    reason:
      'two CLI fine-tuning runs (an epoch and an evaluation on the embedded Fashion-MNIST test set each) take over 120 s on ' +
      "SwiftShader WebGPU; the fine-tune path (download, new head, adapted channels, the checkpoint's preprocessing) is " +
      'backend-independent CLI code, run on cpu and wasm, and the models it loads are checked on webgpu by the pretrained specs',
  },
  {
    backend: 'webgpu',
    id: 'tensor-ops/batch-matmul/long-K-transposeB',
    reason:
      "tfjs-backend-webgpu 4.22's own matmul returns wrong products for transposeB with a long K and a small output " +
      '([40, 2500]·[32, 2500]ᵀ is off by ~240; N = 33 and 2-D shapes of the models are right: a tfjs bug, not ' +
      "softbias'); softbias' BatchMatMul gradient therefore keeps explicit transposes on webgpu",
  },
  {
    backend: 'webgpu',
    id: 'convit/tiny-224/nonlocality',
    reason:
      'SwiftShader WebGPU needs 2-4 minutes per 224-px attention-map pass over 12 layers (~0.07 GFLOP/s matmuls); ' +
      'nonlocality both ways is checked on webgpu with convit_micro (every layer), and at 224 px on cpu and wasm',
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
    id: 'convnextv2/fcmae/grn-batch-pooled',
    reason:
      'SwiftShader WebGPU runs fcmae_tiny on one image (REDUCTIONS: convnextv2/fcmae/one-image), where batch-pooled GRN ' +
      'statistics equal the per-sample ones: the per-sample variant covers it there; the batch-pooled fixture tensors are checked on cpu and wasm',
  },
  {
    backend: 'webgpu',
    id: 'sparse-conv/encoder/grn-batch-pooled',
    reason:
      'SwiftShader WebGPU runs the encoder on one image (REDUCTIONS: sparse-conv/encoder/one-image), where batch-pooled GRN ' +
      'statistics equal the per-sample ones; the batch-pooled fixture tensors are checked on cpu and wasm',
  },
  {
    backend: 'webgpu',
    id: 'sparse-conv/macs/*',
    reason:
      'multiply-add counts do not depend on the backend (they are counted on the host as the encoders run); both cases run on ' +
      'wasm, the small one on cpu too, and SwiftShader would take minutes for the same numbers',
  },
  {
    backend: 'cpu',
    id: 'sparse-conv/macs/convnextv2_atto',
    reason: 'tfjs-cpu needs ~70 s for the dense 224-px Atto encoder; the counts do not depend on the backend and are checked on wasm',
  },
  {
    backend: 'webgpu',
    id: 'convnextv2/mutation',
    reason:
      'mutation tests pin the cpu/wasm tolerance (the fixture\'s suggested_atol, no factor): webgpu compares with a looser ' +
      'factor (TOLERANCE_FACTORS), and the same model code is mutated on cpu and wasm',
  },
];

const SWIFTSHADER_SLOW = 'WebGPU runs on SwiftShader (a CPU Vulkan) here, ~100× slower than wasm';

export const REDUCTIONS: Reduction[] = [
  {
    backend: 'webgpu',
    id: 'convit/tiny-224/warm-forward',
    reason:
      'a second 224-px forward costs a minute on SwiftShader; the cached (eval) path is checked against the fixtures ' +
      'on webgpu with convit_micro and in the gpsa cache tests',
  },
  {
    backend: 'webgpu',
    id: 'convnextv2/atto-224/warm-forward',
    reason:
      'a second 224-px ConvNeXt V2 forward costs tens of seconds on SwiftShader; the first one is compared with the ' +
      'fixture on webgpu, and the warm one is timed on cpu and wasm',
  },
  {
    backend: 'webgpu',
    id: 'convnextv2/atto-224/official-names-logits',
    reason:
      'the logits of the officially-named atto checkpoint: its parameters are checked bit for bit against the timm ' +
      'ones on webgpu (so its forward is the timm-loaded one, compared with the fixture above); a 224-px forward costs tens of seconds on SwiftShader',
  },
  {
    backend: 'webgpu',
    id: 'convnextv2/fcmae/one-image',
    reason:
      `${SWIFTSHADER_SLOW}: the fcmae_tiny comparisons run on the first image only, against the per-sample GRN ` +
      'tensors (batch-pooled statistics of one image are per-sample ones); the loss over both images is checked on cpu and wasm',
  },
  {
    backend: 'webgpu',
    id: 'sparse-conv/encoder/one-image',
    reason:
      `${SWIFTSHADER_SLOW}: the encoder comparisons run on one image (fixture) and on batch 1 at 64 px instead of ` +
      'batch 3 at 96 px (random weights); the batch-pooled GRN statistics need the whole batch and run on cpu and wasm',
  },
  {
    backend: 'webgpu',
    id: 'tensor-ops/batch-matmul/attention-batch',
    reason: `${SWIFTSHADER_SLOW}: the ConViT attention-shaped matmuls run at batch 8 instead of 64 (same kernels, fewer tiles)`,
  },
];

export const TOLERANCE_FACTORS: ToleranceFactor[] = [
  {
    backend: 'webgpu',
    id: '*',
    factor: 10,
    reason:
      'WebGPU does not promise IEEE float32 results: WGSL exp/log/tanh/inverseSqrt are specified to a few ULP (exp: 3 + 2|x| ULP) ' +
      'and may fuse multiply-adds, and the tfjs WebGPU backend reduces in workgroup order, so a real GPU may drift past the ' +
      'float32-vs-float64 bound the fixtures measured on a CPU. On SwiftShader here the worst fixture errors were 10% of ' +
      'suggested_atol (convit_micro, convnextv2_micro, fcmae_tiny encoder); 10× suggested_atol keeps the rule ~10-50× tighter ' +
      'than the old 1e-4·max(1, max|b|) floor. cpu and wasm use suggested_atol as is',
  },
];

function matches(pattern: string, id: string): boolean {
  return pattern.endsWith('*') ? id.startsWith(pattern.slice(0, -1)) : pattern === id;
}

export function exclusionFor(backend: Backend, id: string): Exclusion | undefined {
  return EXCLUSIONS.find((e) => e.backend === backend && matches(e.id, id));
}

export function reductionFor(backend: Backend, id: string): Reduction | undefined {
  return REDUCTIONS.find((r) => r.backend === backend && matches(r.id, id));
}

export function toleranceFactor(backend: Backend, id: string): number {
  return TOLERANCE_FACTORS.find((t) => t.backend === backend && matches(t.id, id))?.factor ?? 1;
}
