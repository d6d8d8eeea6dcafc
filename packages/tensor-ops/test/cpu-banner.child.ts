/**
 * Child process of backend-quiet-probe.pure.test.ts: setupBackend('cpu') in a plain Node process, then a first
 * tensor (where tfjs' cpu backend would print its tfjs-node banner). Prints `RESULT <json>`.
 */
import * as tf from '@tensorflow/tfjs-core';
import { setupBackend } from '@softbias/tensor-ops';

const info = await setupBackend('cpu');
const sum = tf.sum(tf.tensor1d([1, 2, 3])).dataSync()[0];
console.log(`RESULT ${JSON.stringify({ backend: info.backend, sum })}`);
