/**
 * Every model's public forward entry refuses a wrong input with one clear InputError, the same on every backend
 * (before: a stack error on cpu, a wasm trap, an empty result, or "Cannot read properties of undefined").
 */
import { it, expect } from 'vitest';
import * as tf from '@tensorflow/tfjs-core';
import { InputError } from '@softbias/tensor-ops';
import { createModel as createConvit } from '@softbias/models-convit';
import { createFcmae, createModel as createConvnext } from '@softbias/models-convnextv2';
import { describeBackend } from '@softbias/test-utils';

type Entry = { name: string; size: number; make: () => { run: Record<string, (x: unknown) => unknown>; dispose(): void } };

const entries: Entry[] = [
  {
    name: 'ConVit',
    size: 8,
    make: () => {
      const m = createConvit('convit_tiny', { embedDim: 16, depth: 1, numHeads: 2, localUpToLayer: 1, patchSize: 4, imgSize: [8, 8], numClasses: 3 });
      return {
        run: {
          forward: (x) => m.forward(x as tf.Tensor),
          forwardFeatures: (x) => m.forwardFeatures(x as tf.Tensor),
          forwardIntermediates: (x) => m.forwardIntermediates(x as tf.Tensor),
        },
        dispose: () => m.dispose(),
      };
    },
  },
  {
    name: 'ConvNeXtV2',
    size: 32,
    make: () => {
      const m = createConvnext('convnextv2_atto', { depths: [1, 1, 1, 1], dims: [8, 8, 8, 8], numClasses: 3 });
      return {
        run: {
          forward: (x) => m.forward(x as tf.Tensor),
          forwardFeatures: (x) => m.forwardFeatures(x as tf.Tensor),
          forwardIntermediates: (x) => m.forwardIntermediates(x as tf.Tensor),
        },
        dispose: () => m.dispose(),
      };
    },
  },
  {
    name: 'Fcmae',
    size: 64,
    make: () => {
      const m = createFcmae({ depths: [1, 1, 1, 1], dims: [8, 8, 8, 8], imgSize: [64, 64], decoderDepth: 1, decoderEmbedDim: 8 });
      return { run: { forward: (x) => m.forward(x as tf.Tensor), computeLoss: (x) => m.computeLoss(x as tf.Tensor) }, dispose: () => m.dispose() };
    },
  },
];

describeBackend('model inputs: one clear error each', () => {
  for (const e of entries) {
    it(`${e.name}: batch 0, disposed tensor, int32/bool, null, plain array, typed array, disposed model`, () => {
      const model = e.make();
      const S = e.size;
      const before = tf.memory().numTensors;
      const empty = tf.zeros([0, S, S, 3]);
      const gone = tf.zeros([1, S, S, 3]);
      gone.dispose();
      const ints = tf.zeros([1, S, S, 3], 'int32');
      const bools = tf.zeros([1, S, S, 3], 'bool');
      const cases: [unknown, RegExp][] = [
        [empty, /the batch is empty \(shape \[0,/],
        [gone, /the input tensor has been disposed/],
        [ints, /expected float32 input, got int32 \[1,/],
        [bools, /expected float32 input, got bool \[1,/],
        [null, /expected a float32 tf\.Tensor of shape \[B, H, W, C\], got null/],
        [undefined, /got undefined/],
        [[[[[0, 0, 0]]]], /got a plain array \(length 1\); wrap it with tf\.tensor4d/],
        [new Float32Array(3), /got a Float32Array \(not a tensor\)/],
      ];
      for (const [name, run] of Object.entries(model.run)) {
        for (const [x, msg] of cases) {
          let err: unknown;
          try {
            run(x);
          } catch (caught) {
            err = caught;
          }
          expect(err, `${e.name}.${name}(${msg})`).toBeInstanceOf(InputError);
          expect((err as Error).message).toMatch(new RegExp(`^${e.name === 'ConVit' ? 'convit_tiny' : e.name}\\.${name}: `));
          expect((err as Error).message).toMatch(msg);
        }
      }
      tf.dispose([empty, ints, bools]);
      expect(tf.memory().numTensors).toBe(before); // nothing leaked on the error paths
      model.dispose();
      const x = tf.zeros([1, S, S, 3]);
      for (const [name, run] of Object.entries(model.run)) {
        expect(() => run(x), name).toThrow(/the model has been disposed/);
      }
      x.dispose();
    });
  }
});
