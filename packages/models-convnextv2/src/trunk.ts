/**
 * The ConvNeXt V2 trunk (`stem`, `stages.0…3`), shared by the dense classifier (`ConvNeXtV2`) and the FCMAE
 * encoder: one stage loop, one construction order (so seeded initialisations stay as they were).
 */
import type * as tf from '@tensorflow/tfjs-core';
import { Module, ModuleList, Rng } from '@softbias/tensor-ops';
import { ConvNeXtV2Stage, ConvNeXtV2Stem } from './blocks.js';

export interface TrunkOptions {
  rng?: Rng;
  /** Stochastic depth, rising linearly from 0 to this over all blocks (timm / official). Default 0. */
  dropPathRate?: number;
}

/** Stem (4×4, stride 4) and four stages (2× downsampling before stages 1…3): total stride 32. */
export class ConvNeXtV2Trunk extends Module {
  readonly stem: ConvNeXtV2Stem;
  readonly stages: ModuleList<ConvNeXtV2Stage>;
  /** The generator the trunk was built from (subclasses keep drawing from it). */
  protected readonly rng: Rng;

  constructor(
    readonly inChans: number,
    readonly depths: readonly number[],
    readonly dims: readonly number[],
    opts: TrunkOptions = {},
  ) {
    super();
    this.rng = opts.rng ?? new Rng(0);
    const rate = opts.dropPathRate ?? 0;
    this.stem = this.registerModule('stem', new ConvNeXtV2Stem(inChans, dims[0]!, this.rng));
    const total = depths.reduce((a, b) => a + b, 0);
    const rates = Array.from({ length: total }, (_, i) => (total > 1 ? (rate * i) / (total - 1) : 0));
    const stages: ConvNeXtV2Stage[] = [];
    let k = 0;
    for (let i = 0; i < 4; i++) {
      stages.push(
        new ConvNeXtV2Stage(i === 0 ? dims[0]! : dims[i - 1]!, dims[i]!, depths[i]!, {
          downsample: i > 0,
          dropPathRates: rates.slice(k, k + depths[i]!),
          rng: this.rng,
        }),
      );
      k += depths[i]!;
    }
    this.stages = this.registerModule('stages', new ModuleList(stages));
  }

  /**
   * timm's `set_grad_checkpointing`: while training, each block keeps only its input and recomputes its
   * activations in the backward pass (about one more forward of compute, much less memory: larger batches).
   * Same results (`gradCheckpoint` replays DropPath's random masks). Returns the model.
   */
  setGradCheckpointing(enable = true): this {
    for (const stage of this.stages) stage.gradCheckpointing = enable;
    return this;
  }

  /**
   * Stem, then stages 0…`last`, one `tf.tidy` per block. Stage outputs for which `keep(i)` holds are kept
   * (returned in `kept`, stage order); `out` is the last stage's output (possibly also in `kept`). The input
   * is not disposed.
   */
  protected runStages(x: tf.Tensor, last: number, keep: (i: number) => boolean): { out: tf.Tensor; kept: tf.Tensor[] } {
    let y = this.stem.forward(x);
    const kept: tf.Tensor[] = [];
    for (let i = 0; i <= last; i++) {
      const next = this.stages.at(i).forward(y);
      if (!kept.includes(y)) y.dispose();
      y = next;
      if (keep(i)) kept.push(y);
    }
    return { out: y, kept };
  }
}
