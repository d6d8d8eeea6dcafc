/**
 * Small ConViT trunks for the demo and the study: the caller picks the input side, width, depth and heads.
 */
import { convitModelInfo } from '@softbias/models-convit';

/** Architecture overrides of the small Fashion-MNIST ConViT trunk (what `softbias demo` and examples/study build on). */
export interface FashionMnistTrunk {
  imgSize: number;
  patchSize: number;
  inChans: number;
  numClasses: number;
  embedDim: number;
  depth: number;
  numHeads: number;
  mlpRatio: number;
  dropPathRate: number;
}

/**
 * The small ConViT trunk of the demo and the study on Fashion-MNIST: patch 4, one input channel, ten classes,
 * MLP ratio 2, stochastic depth 0.05; the caller picks the input side, width, depth and heads.
 */
export function fashionMnistTrunk(o: { imgSize: number; embedDim: number; depth: number; numHeads: number }): FashionMnistTrunk {
  // The rest is the registered convit_fmnist's (models-convit's registry: the one home of the architecture).
  const a = convitModelInfo('convit_fmnist').args;
  return {
    imgSize: o.imgSize,
    patchSize: a.patchSize!,
    inChans: a.inChans!,
    numClasses: a.numClasses!,
    embedDim: o.embedDim,
    depth: o.depth,
    numHeads: o.numHeads,
    mlpRatio: a.mlpRatio!,
    dropPathRate: a.dropPathRate!,
  };
}
