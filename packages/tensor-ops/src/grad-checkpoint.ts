/**
 * Gradient checkpointing (per-block recomputation, timm's `set_grad_checkpointing` / torch.utils.checkpoint): a
 * block run through `gradCheckpoint` keeps only its input for the backward pass; its activations are freed as
 * soon as its forward ends and recomputed, block by block, when the gradient reaches it. Training then holds
 * about one block's activations plus every block's input instead of every block's activations: larger batches
 * for about one extra forward of compute.
 *
 * How: one `tf.customGrad` node per block whose inputs are the block input and the block's trainable variables
 * (so tfjs accumulates their gradients as for any op); its gradient reruns the block under a nested gradient tape
 * (`engine.gradients`) with the saved input and the incoming gradient. Random layers (Dropout, DropPath: any
 * sub-module holding an `Rng` as `rng`) replay the same masks: their generator states are saved before the
 * forward, restored for the recomputation, then put back, so the random stream advances exactly as without
 * checkpointing and results are identical (bit for bit on a deterministic backend).
 */
import * as tf from '@tensorflow/tfjs-core';
import type { Module } from './module.js';
import { Rng } from './rng.js';
import { recordingGradients } from './kernels/wasm-batch-matmul.js';

/** The generators of `module`'s sub-modules (`rng` fields), in a fixed order. */
function generators(module: Module): Rng[] {
  const out: Rng[] = [];
  for (const [, m] of module.namedModules()) {
    const rng = (m as unknown as { rng?: unknown }).rng;
    if (rng instanceof Rng && !out.includes(rng)) out.push(rng);
  }
  return out;
}

/**
 * `fn(x)` (the forward of `module` on x), with its activations recomputed in the backward pass instead of kept.
 * Outside gradient recording (inference, evaluation) it is just `fn(x)`. `fn` must depend only on x and on
 * `module`'s parameters (and read its generators): other tensors it closes over get no gradient.
 */
export function gradCheckpoint(module: Module, x: tf.Tensor, fn: (x: tf.Tensor) => tf.Tensor): tf.Tensor {
  if (!recordingGradients()) return fn(x);
  const vars = module
    .namedParameters()
    .map(([, p]) => p.variable)
    .filter((v) => v.trainable);
  const rngs = generators(module);
  const before = rngs.map((r) => r.getState());
  const node = tf.customGrad((...args: (tf.Tensor | tf.GradSaveFunc)[]) => {
    const save = args[args.length - 1] as tf.GradSaveFunc;
    const input = args[0] as tf.Tensor;
    save([input]);
    const value = tf.tidy(() => fn(input));
    return {
      value,
      gradFunc: (dy: tf.Tensor | tf.Tensor[], saved: tf.Tensor[]) => {
        const xs = saved[0]!;
        const after = rngs.map((r) => r.getState());
        for (const [i, r] of rngs.entries()) r.setState(before[i]!);
        try {
          const { value: y, grads } = tf.engine().gradients(() => fn(xs), [xs, ...vars], dy as tf.Tensor, true);
          y.dispose();
          return grads.map((g, i) => g ?? tf.zerosLike(i === 0 ? xs : vars[i - 1]!));
        } finally {
          for (const [i, r] of rngs.entries()) r.setState(after[i]!);
        }
      },
    };
  });
  return node(x, ...vars);
}
