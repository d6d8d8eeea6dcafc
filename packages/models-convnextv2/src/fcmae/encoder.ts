/** The FCMAE encoder: the ConvNeXt V2 trunk (shared with the dense classifier) without head. */
import type { Rng } from '@softbias/tensor-ops';
import type { BlockWeights, EncoderWeights } from '@softbias/sparse-conv';
import type { ConvNeXtV2Block } from '../blocks.js';
import { ConvNeXtV2Trunk } from '../trunk.js';

/**
 * The FCMAE encoder: the `ConvNeXtV2Trunk` (`stem`, `stages`, the same names and construction as the
 * classifier's, no drop path), run densely-masked or sparse by `@softbias/sparse-conv` through `weights()`.
 */
export class FcmaeEncoder extends ConvNeXtV2Trunk {
  constructor(inChans: number, depths: readonly number[], dims: readonly number[], rng: Rng) {
    super(inChans, depths, dims, { rng });
  }

  /** The parameters as plain tensors (tfjs layouts) for the `@softbias/sparse-conv` encoders (no copies). */
  weights(): EncoderWeights {
    const block = (b: ConvNeXtV2Block): BlockWeights => ({
      convDw: { weight: b.convDw.weight.value, bias: b.convDw.bias.value },
      norm: { weight: b.norm.weight.value, bias: b.norm.bias.value },
      fc1: { weight: b.mlp.fc1.weight.value, bias: b.mlp.fc1.bias?.value ?? null },
      grn: { weight: b.mlp.grn.weight.value, bias: b.mlp.grn.bias.value },
      fc2: { weight: b.mlp.fc2.weight.value, bias: b.mlp.fc2.bias?.value ?? null },
    });
    return {
      stem: {
        conv: { weight: this.stem.conv.weight.value, bias: this.stem.conv.bias?.value ?? null },
        norm: { weight: this.stem.norm.weight.value, bias: this.stem.norm.bias.value },
      },
      stages: this.stages.items.map((s) => ({
        downsample: s.downsample
          ? {
              norm: { weight: s.downsample.norm.weight.value, bias: s.downsample.norm.bias.value },
              conv: { weight: s.downsample.conv.weight.value, bias: s.downsample.conv.bias?.value ?? null },
            }
          : null,
        blocks: s.blocks.items.map(block),
      })),
    };
  }
}
