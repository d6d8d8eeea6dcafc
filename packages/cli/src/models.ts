/**
 * One entry point over every registered model family: the one registry of `@softbias/tensor-ops/models`
 * (`models`), which the family packages register into when imported.
 */
import '@softbias/models-convit'; // registers the ConViT family and names
import '@softbias/models-convnextv2'; // registers ConvNeXt V2 (and the FCMAE file family)
import { type FromFileOptions, type VisionModel, type WeightsInput, models, readWeights } from '@softbias/tensor-ops/models';

/** What the CLI needs from a model of any family: the shared contract. */
export type AnyModel = VisionModel;

/** A registered family name ('convit', 'convnextv2', …). */
export type Family = 'convit' | 'convnextv2' | (string & {});

/** The family of a registered model name; throws "unknown model 'x'; registered: …". */
export function familyOf(name: string): Family {
  return models.get(name).family;
}

export function listAllModels(): { family: Family; name: string }[] {
  return models.list().map((name) => ({ family: models.get(name).family, name }));
}

export function createAnyModel(name: string, overrides: Record<string, unknown> = {}): AnyModel {
  return models.create(name, overrides);
}

/**
 * Rebuild a model from a weights file of any registered family (told from its metadata, else its tensor
 * names, by `models.familyOf`); the file is checked against the architecture before anything is allocated.
 */
export async function loadAnyModel(source: WeightsInput, opts: FromFileOptions = {}): Promise<{ family: Family; model: AnyModel }> {
  const w = await readWeights(source, opts);
  const family = models.familyOf(w).name;
  return { family, model: await models.fromFile(w, opts) };
}
