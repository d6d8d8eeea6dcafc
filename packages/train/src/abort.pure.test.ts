/**
 * An abort fired from outside the training loop (a timer, a signal handler) is seen within one update: fit
 * yields to the event loop between updates, stops with status 'aborted' and saves a checkpoint of that step.
 */
import { describe, it, expect } from 'vitest';
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Rng, parseSafetensors } from '@softbias/tensor-ops';
import { ArrayDataset, DataLoader } from '@softbias/data';
import { fit, yieldToEventLoop } from '@softbias/train';
import { TinyViT } from '../test/tiny-model.js';

function dataset(n: number): ArrayDataset {
  const rng = new Rng(3);
  const images = new Uint8Array(n * 64);
  for (let i = 0; i < images.length; i++) images[i] = rng.int(256);
  return new ArrayDataset({ images, labels: Array.from({ length: n }, (_, i) => i % 3), imageShape: [8, 8, 1] });
}

describe('abort between updates', () => {
  it('a timer aborting mid-epoch stops fit within one update, with a checkpoint of that step', async () => {
    const path = join(mkdtempSync(join(tmpdir(), 'softbias-abort-')), 'ckpt.safetensors');
    const model = new TinyViT({ imgSize: 8, patchSize: 4, inChans: 1, dim: 8, depth: 1, heads: 2, numClasses: 3, seed: 1 });
    const ac = new AbortController();
    let firedAt: number | undefined;
    const r = await fit({
      model,
      data: new DataLoader(dataset(64), { batchSize: 4, seed: 1 }), // 16 updates per epoch
      epochs: 2,
      numClasses: 3,
      checkpoint: { path },
      progress: 'none',
      signal: ac.signal,
      onProgress: (p) => {
        if (p.step === 2) setTimeout(() => {
            firedAt = p.step;
            ac.abort();
          }, 0);
      },
    });
    expect(firedAt).toBe(2);
    expect(r.status).toBe('aborted');
    expect(r.step).toBeGreaterThanOrEqual(2);
    expect(r.step).toBeLessThanOrEqual(4); // not the end of the epoch (16) nor of the run (32)
    const meta = JSON.parse(parseSafetensors(readFileSync(path)).metadata['softbias.checkpoint']!) as { step: number };
    expect(meta.step).toBe(r.step);
    r.optimizer.dispose();
    model.dispose();
  });

  it('yieldToEventLoop lets timers and immediates run', async () => {
    let ran = false;
    setTimeout(() => (ran = true), 0);
    for (let i = 0; i < 50 && !ran; i++) {
      const t = Date.now();
      while (Date.now() - t < 2); // busy, like an update
      await yieldToEventLoop();
    }
    expect(ran).toBe(true);
  });
});
