/** timm's crop_mode 'squash' (the 384 / 512 px fine-tunes): both sides resized, whatever the aspect ratio. */
import { describe, expect, it } from 'vitest';
import { imagenetConfig } from './pretrained.js';
import { preprocessConfig, resizeTarget } from './preprocess.js';

describe("crop_mode 'squash'", () => {
  it('resizes both sides to ⌊size / cropPct⌋; center keeps the aspect ratio', () => {
    expect(resizeTarget(300, 400, [384, 384], 1, 'squash')).toEqual([384, 384]);
    expect(resizeTarget(300, 400, [384, 384], 1)).toEqual([384, 512]);
    expect(resizeTarget(300, 400, [224, 224], 0.875, 'squash')).toEqual([256, 256]);
  });

  it('comes from the pretrained config (and overrides); center configs are unchanged', () => {
    const squash = imagenetConfig({ firstConv: 'stem.0', classifier: 'head.fc', inputSize: [3, 384, 384], cropPct: 1, cropMode: 'squash' });
    expect(preprocessConfig(squash).cropMode).toBe('squash');
    expect(preprocessConfig(squash, { cropMode: 'center' }).cropMode).toBeUndefined();
    const center = imagenetConfig({ firstConv: 'stem.0', classifier: 'head.fc' });
    expect(preprocessConfig(center)).toEqual({ size: [224, 224], cropPct: 0.875, mean: center.mean, std: center.std });
    expect(() => preprocessConfig(center, { cropMode: 'stretch' as 'squash' })).toThrow(/cropMode must be 'center' or 'squash'/);
  });
});
