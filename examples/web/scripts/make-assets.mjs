/**
 * Writes the web app's committed assets (examples/web/public/), from the built packages (npm run build):
 *
 *   node examples/web/scripts/make-assets.mjs [path/to/convit.safetensors]
 *
 * - public/samples/<k>-<name>.png: the first test image of each Fashion-MNIST class from @softbias/data's
 *   embedded subset (28×28 grey PNG), shown as the Classify tab's samples;
 * - public/models/fashion-mnist-convit.safetensors: the demo's trained ConViT (`softbias demo` writes
 *   <out>/convit.safetensors, or `softbias train` with the demo's trunk: see the README) re-saved in float16,
 *   with the Fashion-MNIST class names in `__metadata__.labels` and the preprocessing it was trained with
 *   (Fashion-MNIST's mean and std, 28×28, no crop) in `__metadata__.pretrained_cfg` (timm's names).
 */
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { encode as encodePng } from 'fast-png';
import { FASHION_MNIST_CLASSES, FASHION_MNIST_MEAN, FASHION_MNIST_STD, readIdx } from '@softbias/data';
import { createModel, loadModel } from '@softbias/models-convit';
import { setupBackend } from '@softbias/tensor-ops';
import { setLabelNames, setPretrainedConfig } from '@softbias/tensor-ops/models';

const here = dirname(fileURLToPath(import.meta.url));
const root = join(here, '../../..');
const pub = join(here, '../public');

await setupBackend('cpu');
const dir = join(root, 'packages/data/assets/fashion-mnist');
const images = await readIdx(new Uint8Array(readFileSync(join(dir, 't10k-images-idx3-ubyte.gz'))));
const labels = await readIdx(new Uint8Array(readFileSync(join(dir, 't10k-labels-idx1-ubyte.gz'))));
const [, h, w] = images.shape;
mkdirSync(join(pub, 'samples'), { recursive: true });
const list = [];
for (let k = 0; k < 10; k++) {
  const i = Array.from(labels.data).indexOf(k);
  const name = `${k}-${FASHION_MNIST_CLASSES[k].toLowerCase().replace(/[^a-z]+/g, '-')}.png`;
  writeFileSync(join(pub, 'samples', name), encodePng({ width: w, height: h, channels: 1, depth: 8, data: images.data.subarray(i * h * w, (i + 1) * h * w) }));
  list.push({ file: `samples/${name}`, label: FASHION_MNIST_CLASSES[k], index: i });
}
writeFileSync(join(pub, 'samples', 'samples.json'), `${JSON.stringify(list, null, 2)}\n`);
console.log(`wrote ${list.length} samples to ${join(pub, 'samples')}`);

const src = process.argv[2];
if (src) {
  const loaded = await loadModel(new Uint8Array(readFileSync(src)));
  // Saved under the registered name when it is the demo's trunk (softbias inspect / models.fromFile then say
  // convit_fmnist), else as it came.
  let model = loaded;
  const trunk = createModel('convit_fmnist');
  if (JSON.stringify(trunk.config) === JSON.stringify(loaded.config)) {
    trunk.loadStateDict(loaded.stateDict());
    loaded.dispose();
    model = trunk;
  } else trunk.dispose();
  mkdirSync(join(pub, 'models'), { recursive: true });
  const out = join(pub, 'models', 'fashion-mnist-convit.safetensors');
  const c = model.config;
  // The preprocessing it was trained with and the class names, as softbias demo / train save them.
  setPretrainedConfig(model, {
    inputSize: [c.inChans, c.imgSize[0], c.imgSize[1]],
    cropPct: 1,
    interpolation: 'bilinear',
    mean: FASHION_MNIST_MEAN,
    std: FASHION_MNIST_STD,
    // Trained here by softbias demo, not timm's release: no reference weights, no timm licence to claim.
    weights: null,
    license: null,
  });
  setLabelNames(model, FASHION_MNIST_CLASSES);
  const bytes = await model.saveWeights(out, { dtype: 'float16' });
  console.log(`wrote ${out} (${bytes.length} bytes, float16)`);
  model.dispose();
}
