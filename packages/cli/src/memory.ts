/**
 * Model geometry for a data set, and the memory a training configuration needs, checked before the model is
 * built: a configuration that cannot fit gets an error naming the setting to change, not a wasm
 * "memory access out of bounds" in the middle of the first step.
 *
 * The estimate is deliberately simple (float32 parameters × 5: weights, gradients, two AdamW moments, EMA; and
 * the activations a training step keeps for its backward pass, per block), calibrated on a measured peak:
 * convit_tiny at 224×224, batch 8, peaks at 1.27 GiB of tensors with the lean backward pass (the formula gives
 * 1.25 GiB); convnextv2_atto at 64×64, batch 2, peaks at 0.059 GiB (tf.profile on cpu; the formula gives 0.055).
 */
import { totalmem } from 'node:os';
import * as convit from '@softbias/models-convit';
import * as convnext from '@softbias/models-convnextv2';
import type { Family } from './models.js';

/** The most tokens a ConViT picked for a data set gets (a 16×16 grid). */
export const MAX_AUTO_TOKENS = 256;

/**
 * ConViT's patch size for H×W images: 4 when the grid stays within {@link MAX_AUTO_TOKENS} tokens (28×28 → 7×7,
 * 32×32 → 8×8, as before), otherwise the smallest divisor of both sides that does (224×224 → 14: a 16×16 grid;
 * the old rule's 4 gave 3136 tokens and attention maps of 3136² per head), keeping a grid of at least 2×2; 1 when
 * nothing else does (the memory check then says whether it fits).
 */
export function convitPatchSize(H: number, W: number): number {
  const tokens = (p: number) => (H / p) * (W / p);
  if (H % 4 === 0 && W % 4 === 0 && tokens(4) <= MAX_AUTO_TOKENS) return 4;
  for (let p = 2; 2 * p <= Math.min(H, W); p++) {
    if (H % p === 0 && W % p === 0 && tokens(p) <= MAX_AUTO_TOKENS) return p;
  }
  return 1;
}

export interface MemoryEstimate {
  /** Bytes of the model's parameters and optimizer state (× 5 of the parameters). */
  fixedBytes: number;
  /** Bytes of activations per image in the batch. */
  perImageBytes: number;
  /** What drives the activations, for the message. */
  describe: string;
  /** The settings to change, for the message. */
  advice: string;
}

const GiB = 1024 ** 3;
const gib = (b: number) => `${(b / GiB).toFixed(b < 10 * GiB ? 2 : 1)} GiB`;

/**
 * Estimate a training step's memory for a registered model with these overrides (no model is built).
 * `inputSize`: the images the model is trained on (ConvNeXt V2 takes any size; ConViT's is its imgSize).
 */
export function estimateTraining(name: string, family: Family, overrides: Record<string, unknown>, inputSize?: readonly [number, number]): MemoryEstimate {
  if (family === 'convit') {
    const c = convit.resolveConfig(convit.convitModelInfo(name).args, overrides as convit.ConvitOverrides);
    const [H, W] = c.imgSize;
    const N = (H / c.patchSize) * (W / c.patchSize) + 1;
    const C = c.embedDim;
    const perBlockParams = (3 + 1 + 2 * c.mlpRatio) * C * C + 16 * C;
    const P = c.depth * perBlockParams + N * C + c.patchSize * c.patchSize * c.inChans * C + C * (c.numClasses + 1);
    const perImage = 4 * c.depth * (48 * N * C + 9 * c.numHeads * N * N);
    return {
      fixedBytes: 4 * 5 * P,
      perImageBytes: perImage,
      describe: `${name} at ${H}×${W} with patchSize ${c.patchSize} (${N - 1} tokens), embedDim ${C}, depth ${c.depth}, numHeads ${c.numHeads}`,
      advice: `fewer tokens (a larger --set patchSize=N: ${N - 1} tokens now, attention grows with their square), --set embedDim=N or --set depth=N`,
    };
  }
  const c = convnext.resolveConfig(name, overrides as convnext.ConvNeXtV2Overrides);
  const [H, W] = inputSize ?? [224, 224];
  let P = 16 * c.inChans * c.dims[0] + c.dims[3] * (c.numClasses + 2);
  let perImage = 0;
  for (let s = 0; s < 4; s++) {
    const d = c.dims[s]!;
    const positions = Math.floor(H / (4 * 2 ** s)) * Math.floor(W / (4 * 2 ** s));
    P += c.depths[s]! * (49 * d + 8 * d * d + 12 * d);
    if (s > 0) P += 4 * c.dims[s - 1]! * d;
    perImage += 4 * c.depths[s]! * 80 * positions * d;
  }
  return {
    fixedBytes: 4 * 5 * P,
    perImageBytes: perImage,
    describe: `${name} at ${H}×${W} with depths ${c.depths.join(',')} and dims ${c.dims.join(',')}`,
    advice: 'a smaller model (--set dims=…, --set depths=…) or smaller images',
  };
}

/** What a backend can hold: wasm's 32-bit memory (4 GiB), otherwise three quarters of the machine's memory. */
export function memoryBudget(backend: string): { bytes: number; what: string } {
  if (backend === 'wasm') return { bytes: 4 * GiB, what: "the wasm backend's 4 GiB (32-bit memory)" };
  const bytes = 0.75 * totalmem();
  return { bytes, what: `three quarters of this machine's ${gib(totalmem())} (${backend} backend)` };
}

/**
 * Throws when a training step of this configuration needs more than the backend can hold, naming the settings
 * to change (the largest batch size that fits, when one does).
 */
export function checkTrainingMemory(
  name: string,
  family: Family,
  overrides: Record<string, unknown>,
  batchSize: number,
  backend: string,
  inputSize?: readonly [number, number],
): void {
  const e = estimateTraining(name, family, overrides, inputSize);
  const need = e.fixedBytes + batchSize * e.perImageBytes;
  const budget = memoryBudget(backend);
  if (need <= budget.bytes) return;
  const fits = Math.floor((budget.bytes - e.fixedBytes) / e.perImageBytes);
  const batchAdvice = fits >= 1 ? `--batch-size ${fits} or less (now ${batchSize}), or ` : '';
  throw new Error(
    `train: ${e.describe} and --batch-size ${batchSize} needs about ${gib(need)} for a training step, more than ${budget.what}: ` +
      `use ${batchAdvice}${e.advice}`,
  );
}

/** A wasm trap or allocation failure during training, told as what it is. */
export function explainOutOfMemory(e: unknown, batchSize: number): unknown {
  const msg = (e as Error)?.message ?? '';
  if (/memory access out of bounds|Out of memory|Array buffer allocation failed|Cannot allocate Wasm memory|could not allocate memory|Invalid typed array length/i.test(msg)) {
    return new Error(`train: ran out of memory during a training step (${msg}); lower --batch-size (now ${batchSize}) or use a smaller model (--set …)`, {
      cause: e,
    });
  }
  return e;
}
