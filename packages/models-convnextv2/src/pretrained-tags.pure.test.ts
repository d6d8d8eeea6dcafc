/**
 * The registered timm tags of every ConvNeXt V2 size, against timm's `default_cfgs` (convnext.py): which
 * checkpoints exist, their input size, crop, licence, and the encoder-only `.fcmae` tags; hub ids parse back.
 */
import { defaultTag, models, parseHubId } from '@softbias/tensor-ops/models';
import { describe, expect, it } from 'vitest';
import './index.js';

const tagsOf = (name: string) => (models.get(name).tags ?? []).map((t) => t.tag);

describe('ConvNeXt V2 pretrained tags (timm default_cfgs)', () => {
  it('every size lists timm’s checkpoints, the registered default first', () => {
    for (const s of ['atto', 'femto', 'pico']) expect(tagsOf(`convnextv2_${s}`)).toEqual(['fcmae_ft_in1k', 'fcmae']);
    for (const s of ['nano', 'tiny', 'base', 'large']) {
      expect(tagsOf(`convnextv2_${s}`)).toEqual(['fcmae_ft_in1k', 'fcmae_ft_in22k_in1k', 'fcmae_ft_in22k_in1k_384', 'fcmae']);
    }
    expect(tagsOf('convnextv2_huge')).toEqual(['fcmae_ft_in1k', 'fcmae_ft_in22k_in1k_384', 'fcmae_ft_in22k_in1k_512', 'fcmae']);
    for (const name of models.list({ family: 'convnextv2' })) expect(defaultTag(models.get(name))?.hubId).toBe(`timm/${name}.fcmae_ft_in1k`);
  });

  it('input size, crop, test crop and licence as timm has them', () => {
    const tag = (name: string, t: string) => models.get(name).tags!.find((x) => x.tag === t)!;
    expect(tag('convnextv2_atto', 'fcmae_ft_in1k').pretrainedConfig).toMatchObject({
      inputSize: [3, 224, 224],
      cropPct: 0.875,
      testInputSize: [3, 288, 288],
      testCropPct: 0.95,
      interpolation: 'bicubic',
      numClasses: 1000,
      license: 'CC-BY-NC-4.0',
      weights: 'timm/convnextv2_atto.fcmae_ft_in1k',
    });
    expect(tag('convnextv2_tiny', 'fcmae_ft_in1k').pretrainedConfig.testCropPct).toBe(1);
    expect(tag('convnextv2_base', 'fcmae_ft_in22k_in1k_384').pretrainedConfig).toMatchObject({ inputSize: [3, 384, 384], cropPct: 1, cropMode: 'squash' });
    expect(tag('convnextv2_base', 'fcmae_ft_in22k_in1k').pretrainedConfig.cropMode).toBeUndefined();
    expect(tag('convnextv2_huge', 'fcmae_ft_in22k_in1k_512').pretrainedConfig.inputSize).toEqual([3, 512, 512]);
    const fcmae = tag('convnextv2_nano', 'fcmae');
    expect(fcmae.pretrainedConfig.numClasses).toBe(0);
    expect(fcmae.encoderOnly?.absent).toEqual(['head.norm.', 'head.fc.']);
  });

  it('hub ids parse to repository, architecture and tag; a bare name is its default tag', () => {
    expect(parseHubId('timm/convnextv2_atto.fcmae_ft_in1k')).toEqual({ repo: 'timm/convnextv2_atto.fcmae_ft_in1k', architecture: 'convnextv2_atto', tag: 'fcmae_ft_in1k' });
    expect(parseHubId('hf-hub:timm/convnextv2_nano.fcmae').tag).toBe('fcmae');
    expect(parseHubId('convnextv2_tiny.fcmae_ft_in22k_in1k_384').repo).toBe('timm/convnextv2_tiny.fcmae_ft_in22k_in1k_384');
    expect(parseHubId('convnextv2_pico').repo).toBe('timm/convnextv2_pico.fcmae_ft_in1k');
  });
});
