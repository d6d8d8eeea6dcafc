/**
 * The weights a ConvNeXt V2 encoder runs on, as plain tensors in tfjs layouts, so the dense-masked and the
 * sparse forms can run the very same parameters as a dense ConvNeXt V2 (`@softbias/models-convnextv2` builds
 * this from its modules).
 */
import type * as tf from '@tensorflow/tfjs-core';

export interface NormWeights {
  weight: tf.Tensor;
  bias: tf.Tensor;
}

export interface ConvWeights {
  /** HWIO `[k, k, in, out]` (depth-wise: `[k, k, C, 1]`). */
  weight: tf.Tensor;
  bias: tf.Tensor | null;
}

export interface LinearWeights {
  /** `[in, out]` (a 1×1-conv `[1, 1, in, out]` is accepted too). */
  weight: tf.Tensor;
  bias: tf.Tensor | null;
}

export interface BlockWeights {
  convDw: ConvWeights;
  norm: NormWeights;
  fc1: LinearWeights;
  /** GRN γ (`weight`) and β (`bias`), `[4C]` (or any shape with 4C elements). */
  grn: NormWeights;
  fc2: LinearWeights;
}

export interface StageWeights {
  /** LayerNorm then the 2×2 stride-2 conv; absent for stage 0. */
  downsample: { norm: NormWeights; conv: ConvWeights } | null;
  blocks: BlockWeights[];
}

export interface EncoderWeights {
  /** The k×k stride-k patchify conv (k = 4) and its LayerNorm. */
  stem: { conv: ConvWeights; norm: NormWeights };
  stages: StageWeights[];
}

/** Channels of each stage and the stem kernel, checked against the weights' shapes. */
export function describeEncoder(w: EncoderWeights): { inChans: number; stemKernel: number; dims: number[]; depths: number[] } {
  const sw = w.stem.conv.weight;
  if (sw.rank !== 4 || sw.shape[0] !== sw.shape[1]) {
    throw new Error(`encoder weights: the stem conv must be HWIO [k, k, in, out], got [${sw.shape}]`);
  }
  const dims: number[] = [];
  const depths: number[] = [];
  let c = sw.shape[3]!;
  w.stages.forEach((s, i) => {
    if (i > 0) {
      if (!s.downsample) throw new Error(`encoder weights: stage ${i} has no downsample`);
      const dw = s.downsample.conv.weight;
      if (dw.rank !== 4 || dw.shape[0] !== 2 || dw.shape[1] !== 2 || dw.shape[2] !== c) {
        throw new Error(`encoder weights: stage ${i} downsample conv must be [2, 2, ${c}, out], got [${dw.shape}]`);
      }
      c = dw.shape[3]!;
    } else if (s.downsample) {
      throw new Error('encoder weights: stage 0 must not have a downsample (the stem does it)');
    }
    for (const b of s.blocks) {
      const k = b.convDw.weight.shape;
      if (k.length !== 4 || k[2] !== c || k[3] !== 1) {
        throw new Error(`encoder weights: stage ${i} depth-wise kernel must be [k, k, ${c}, 1], got [${k}]`);
      }
    }
    dims.push(c);
    depths.push(s.blocks.length);
  });
  return { inChans: sw.shape[2]!, stemKernel: sw.shape[0]!, dims, depths };
}
