/** The shipped ImageNet-1k names and a checkpoint's own names (metadata, config, id2label). */
import { describe, it, expect } from 'vitest';
import { serializeSafetensors } from '../safetensors.js';
import { imagenetLabels, imagenetSynsets, labelNamesOf } from './labels.js';
import { readWeights } from './weights.js';

describe('class names', () => {
  it('ImageNet-1k: 1000 names and synsets in timm order', () => {
    const l = imagenetLabels();
    const s = imagenetSynsets();
    expect(l).toHaveLength(1000);
    expect(s).toHaveLength(1000);
    expect(new Set(s).size).toBe(1000);
    expect(s.every((id) => /^n\d{8}$/.test(id))).toBe(true);
    // Synset ids are sorted in ImageNet-1k's class order (as torchvision's ImageFolder orders them).
    expect([...s].sort()).toEqual([...s]);
    expect([l[0], s[0]]).toEqual(['tench, Tinca tinca', 'n01440764']);
    expect(l[1]).toBe('goldfish, Carassius auratus');
    expect([l[207], s[207]]).toEqual(['golden retriever', 'n02099601']);
    expect(l[281]).toBe('tabby, tabby cat');
    expect(l[999]).toBe('toilet tissue, toilet paper, bathroom tissue');
    expect(l.every((n) => n.length > 0 && !n.includes('|'))).toBe(true);
    expect(imagenetLabels()).toBe(l); // parsed once
  });

  it("reads a checkpoint's own names: metadata.labels, config label_names / labelNames / id2label, hub pretrained_cfg", async () => {
    const t = { w: { data: new Float32Array(1), shape: [1] } };
    const withLabels = await readWeights(serializeSafetensors(t, { metadata: { labels: JSON.stringify(['cat', 'dog']) } }));
    expect(labelNamesOf(withLabels)).toEqual(['cat', 'dog']);
    const inConfig = await readWeights(serializeSafetensors(t, { metadata: { config: JSON.stringify({ label_names: ['a', 'b', 'c'] }) } }));
    expect(labelNamesOf(inConfig)).toEqual(['a', 'b', 'c']);
    expect(labelNamesOf({ id2label: { 1: 'dog', 0: 'cat' } })).toEqual(['cat', 'dog']);
    expect(labelNamesOf({ id2label: { 0: 'cat', 2: 'dog' } })).toBeUndefined(); // a gap: not a list
    expect(labelNamesOf({ architecture: 'x', pretrained_cfg: { label_names: ['p', 'q'] } })).toEqual(['p', 'q']);
    expect(labelNamesOf({ labelNames: ['x'] })).toEqual(['x']);
    expect(labelNamesOf(await readWeights(serializeSafetensors(t)))).toBeUndefined();
    expect(labelNamesOf(await readWeights(serializeSafetensors(t, { metadata: { labels: 'not json' } })))).toBeUndefined();
    expect(labelNamesOf(await readWeights(serializeSafetensors(t, { metadata: { labels: '[1, 2]' } })))).toBeUndefined();
  });
});
