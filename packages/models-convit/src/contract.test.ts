/**
 * ConViT in the one model contract (@softbias/tensor-ops/models): the shared registry and file loader, the
 * shared classifier slot, parameter shapes for every mixer kind, and the mixers' own MAC counts summed per
 * block against a count made by hand.
 */
import * as tf from '@tensorflow/tfjs-core';
import { it, expect } from 'vitest';
import { describeBackend, expectClose } from '@softbias/test-utils';
import { ClassifierHead, models, preprocess as sharedPreprocess } from '@softbias/tensor-ops/models';
import { ConViT, ConVit, type ConvitMixerSpec, createModel, parameterShapes, preprocess } from '@softbias/models-convit';

const micro = { imgSize: 16, patchSize: 4, embedDim: 16, depth: 2, numHeads: 2, localUpToLayer: 1, numClasses: 3 };

describeBackend('models-convit: the shared model contract', () => {
  it('registers its names and family into the one registry; fromFile rebuilds a saved model', async () => {
    expect(models.list({ family: 'convit' })).toEqual([
      'convit_tiny', 'convit_small', 'convit_base', 'convit_tiny_plus', 'convit_small_plus', 'convit_base_plus',
      'convit_tiny_deit', 'convit_small_deit', 'convit_base_deit', 'convit_fmnist', 'convit_fmnist_deit',
    ]);
    expect(models.get('convit_tiny').pretrainedConfig.weights).toBe('timm/convit_tiny.fb_in1k');
    const m = models.create('convit_tiny', micro);
    expect(m).toBeInstanceOf(ConViT);
    expect(ConVit).toBe(ConViT); // the deprecated spelling is the same class
    const bytes = await m.saveWeights();
    const back = await models.fromFile(bytes);
    expect(back).toBeInstanceOf(ConViT);
    expect((back as ConViT).name).toBe('convit_tiny');
    const x = tf.randomNormal([2, 16, 16, 3], 0, 1, 'float32', 3);
    const [a, b] = [m.forward(x), back.forward(x)];
    await expectClose(b, await a.data(), 0, 'fromFile round trip');
    tf.dispose([x, a, b]);
    m.dispose();
    back.dispose();
  });

  it('the classifier slot is the shared ClassifierHead, swapped by resetClassifier', () => {
    const m = createModel('convit_tiny', micro);
    expect(m.head).toBeInstanceOf(ClassifierHead);
    expect(m.namedParameters().map(([n]) => n).filter((n) => n.startsWith('head'))).toEqual(['head.weight', 'head.bias']);
    m.resetClassifier(0);
    expect(m.head.isIdentity).toBe(true);
    expect(m.numClasses).toBe(0);
    expect(m.namedParameters().some(([n]) => n.startsWith('head'))).toBe(false);
    m.resetClassifier(5);
    expect(m.head.weight.torchShape).toEqual([5, 16]);
    m.dispose();
  });

  const mixers: ConvitMixerSpec[] = [
    { kind: 'window', size: 2 },
    { kind: 'dwconv', kernelSize: 3 },
    { kind: 'dwconv', kernelSize: 3, dynamic: true },
    { kind: 'ff-patches' },
    { kind: 'mhsa' },
  ];
  for (const spec of mixers) {
    it(`parameterShapes and MACs with a ${JSON.stringify(spec)} block`, () => {
      const m = createModel('convit_tiny', { ...micro, mixers: [{ kind: 'gpsa' }, spec] });
      const shapes = parameterShapes(m.config);
      expect([...shapes]).toEqual(m.namedParameters().map(([n, p]) => [n, p.torchShape]));
      // By hand: 4×4 patches (P = 16), C = 16, hidden 64, 2 heads, 3 classes; block 1 sees 17 tokens.
      const P = 16;
      const C = 16;
      const patch = P * C * 3 * 4 * 4;
      const gpsa = P * C * 2 * C + P * C * C + P * P * 3 * 2 + 2 * P * P * C + P * C * C;
      const mlp = (T: number) => 2 * T * C * 64;
      const mixer1: Record<string, number> = {
        window: P * C * 3 * C + 2 * 4 * P * C + P * C * C,
        dwconv: P * C * 9 + P * C * C,
        'dwconv-dynamic': C * 4 + 4 * C * 9 + P * C * 9 + P * C * C,
        'ff-patches': 2 * C * P * 64,
        mhsa: 17 * C * 3 * C + 2 * 17 * 17 * C + 17 * C * C,
      };
      const key = spec.kind === 'dwconv' && spec.dynamic ? 'dwconv-dynamic' : spec.kind;
      const want = patch + gpsa + mlp(P) + mixer1[key]! + mlp(17) + C * 3;
      expect(m.macs().reduce((s, e) => s + e.macs, 0)).toBe(want);
      expect(m.macs().map((e) => e.name)).toContain('blocks.1.mlp.fc2');
      m.dispose();
    });
  }

  it('preprocess goes through the shared module', async () => {
    const m = createModel('convit_tiny', micro);
    const img = tf.randomUniform([20, 24, 3], 0, 1, 'float32', 5);
    const [a, b, c] = [preprocess(img, m), sharedPreprocess(img, m.pretrainedConfig, { size: 16 }), m.preprocess(img)];
    expect(a.shape).toEqual([1, 16, 16, 3]);
    await expectClose(a, await b.data(), 0, 'convit preprocess = shared preprocess');
    await expectClose(c, await b.data(), 0, 'model.preprocess = shared preprocess');
    tf.dispose([img, a, b, c]);
    m.dispose();
  });
});
