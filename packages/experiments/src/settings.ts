/**
 * The settings of one supervised training run, shared by the experiment runner (`ExperimentSpec`) and the CLI's
 * `softbias train` (`TrainArgs`): one type, so a run described in one place means the same in the other.
 */
export interface TrainSettings<O = Record<string, unknown>> {
  /** Registered model name (e.g. convit_tiny, convnextv2_atto). */
  model: string;
  /** Architecture overrides of the registered configuration. */
  overrides: O;
  /** Fraction f of each class of the training set (the ConViT paper's sample-efficiency protocol). */
  fraction: number;
  epochs: number;
  batchSize: number;
  /** Peak learning rate of AdamW (cosine schedule after the warm-up). */
  lr: number;
  weightDecay: number;
  /** Linear warm-up, in epochs. */
  warmupEpochs: number;
  labelSmoothing: number;
  /** Seed of the model's initialisation, the class subsample, the data order and augmentation. */
  seed: number;
}
