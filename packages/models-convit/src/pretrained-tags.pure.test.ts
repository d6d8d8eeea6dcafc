/** The registered timm tags of ConViT (timm's convit.py `default_cfgs`: `fb_in1k` for tiny, small and base). */
import { defaultTag, models } from '@softbias/tensor-ops/models';
import { describe, expect, it } from 'vitest';
import './index.js';

describe('ConViT pretrained tags (timm default_cfgs)', () => {
  it('tiny, small and base have fb_in1k; the + and DeiT-twin models none', () => {
    for (const name of models.list({ family: 'convit' })) {
      const tags = models.get(name).tags ?? [];
      if (['convit_tiny', 'convit_small', 'convit_base'].includes(name)) {
        expect(tags.map((t) => t.hubId)).toEqual([`timm/${name}.fb_in1k`]);
        expect(defaultTag(models.get(name))!.pretrainedConfig).toMatchObject({
          inputSize: [3, 224, 224],
          cropPct: 0.875,
          interpolation: 'bicubic',
          numClasses: 1000,
          firstConv: 'patch_embed.proj',
          classifier: 'head',
        });
      } else {
        expect(tags).toEqual([]);
      }
    }
  });
});
