/** One entry point over both model families, chosen by registry name or by a weights file's metadata. */
import * as convit from '@softbias/models-convit';
import * as convnext from '@softbias/models-convnextv2';
import type * as tf from '@tensorflow/tfjs-core';
import type { Module, WeightsSource } from '@softbias/tensor-ops';
import { readSafetensors } from '@softbias/tensor-ops';

/** What the CLI needs from a model of either family. */
export interface AnyModel extends Module {
  forward(x: tf.Tensor): tf.Tensor;
  readonly numClasses: number;
  saveWeights(path?: string): Promise<Uint8Array>;
}

export type Family = 'convit' | 'convnextv2';

export function familyOf(name: string): Family {
  if (convit.listModels().includes(name)) return 'convit';
  if (convnext.listModels().includes(name)) return 'convnextv2';
  throw new Error(
    `unknown model '${name}'. ConViT: ${convit.listModels().join(', ')}. ConvNeXt V2: ${convnext.listModels().join(', ')}`,
  );
}

export function listAllModels(): { family: Family; name: string }[] {
  return [
    ...convit.listModels().map((name) => ({ family: 'convit' as const, name })),
    ...convnext.listModels().map((name) => ({ family: 'convnextv2' as const, name })),
  ];
}

export function createAnyModel(name: string, overrides: Record<string, unknown>): AnyModel {
  return (familyOf(name) === 'convit'
    ? convit.createModel(name, overrides as convit.ConvitOverrides)
    : convnext.createModel(name, overrides as convnext.ConvNeXtV2Overrides)) as unknown as AnyModel;
}

/** Rebuild a model from a weights file, choosing the family from its metadata or key names. */
export async function loadAnyModel(source: WeightsSource): Promise<{ family: Family; model: AnyModel }> {
  const file = await readSafetensors(source);
  const arch = file.metadata['arch'] ?? '';
  const names = file.names();
  const isConvit = arch.startsWith('convit') || names.some((n) => n.includes('.attn.') || n === 'cls_token');
  if (isConvit) return { family: 'convit', model: (await convit.loadModel(file)) as unknown as AnyModel };
  return { family: 'convnextv2', model: (await convnext.loadModel(file)) as unknown as AnyModel };
}
