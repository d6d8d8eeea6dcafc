/**
 * The models under test, through the packages' public API only: the one model registry of
 * `@softbias/tensor-ops/models` (create / loadWeights / forward / train), which the family packages register into.
 */
import '@softbias/models-convit'; // registers the ConViT family
import '@softbias/models-convnextv2'; // registers the ConvNeXt V2 family
import { models, type VisionModel } from '@softbias/tensor-ops/models';

/** What the benchmark needs from a model: the shared model contract. */
export type BenchModel = VisionModel;

export const DEFAULT_MODELS = ['convit_tiny', 'convit_tiny_deit', 'convnextv2_atto'] as const;

/** The family of a registered model name ('convit', 'convnextv2', …); throws naming the registered ones. */
export function family(name: string): string {
  return models.get(name).family;
}

export function createBenchModel(name: string): BenchModel {
  return models.create(name);
}
