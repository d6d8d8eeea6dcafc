/** FCMAE initialisation: the official `_init_weights` as written, or timm's. */
import type * as tf from '@tensorflow/tfjs-core';
import { type Module, type Rng, normal, ones, truncNormal, uniform, zeros } from '@softbias/tensor-ops';
import type { FcmaeInit } from './config.js';

/** Re-initialise every parameter (see `CreateFcmaeOptions.init`). */
export function initFcmae(m: Module, kind: FcmaeInit, rng: Rng): void {
  const params = new Map(m.namedParameters());
  for (const [name, p] of params) {
    const shape = p.shape;
    let v: tf.Tensor;
    const isBias = name.endsWith('.bias');
    if (name === 'mask_token') v = normal(shape, rng, 0.02);
    else if (/\.(norm|stem\.1|downsample\.0)\.weight$/.test(name)) v = ones(shape);
    else if (/\.(norm|stem\.1|downsample\.0)\.bias$/.test(name) || /\.grn\./.test(name)) v = zeros(shape);
    else if (kind === 'timm') v = isBias ? zeros(shape) : truncNormal(shape, rng, 0.02);
    else if (/^decoder\.\d+\.mlp\.fc[12]\./.test(name)) {
      // nn.Linear's own reset_parameters (official _init_weights leaves nn.Linear alone): U(±1/√fan_in)
      // for weight and bias; the weight is held as [in, out].
      const w = params.get(name.replace(/bias$/, 'weight'))!;
      const bound = 1 / Math.sqrt(w.shape[0]!);
      v = uniform(shape, rng, -bound, bound);
    } else if (isBias) v = zeros(shape);
    else if (/^encoder\.stages\.\d+\.downsample\.1\.weight$/.test(name)) v = truncNormal(shape, rng, 0.02);
    else v = truncNormal(shape, rng, 1); // timm trunc_normal_ default std (stem, proj, pred, depth-wise, encoder MLP)
    p.assign(v);
    v.dispose();
  }
}
