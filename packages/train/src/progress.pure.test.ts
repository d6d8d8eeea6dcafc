import { describe, it, expect } from 'vitest';
import { ProgressPrinter, type FitProgress } from '@softbias/train';

const p = (batch: number, over: Partial<FitProgress> = {}): FitProgress => ({
  phase: 'train',
  epoch: 1,
  epochs: 3,
  step: 10 + batch,
  totalSteps: 30,
  batch,
  batchesPerEpoch: 10,
  loss: 1.5,
  epochLoss: 1.25,
  lr: 1e-3,
  imagesPerSecond: 42,
  elapsedMs: 65_000,
  ...over,
});

describe('progress output', () => {
  it('a bar redrawn with \\r on a terminal, plain lines elsewhere, nothing when off', () => {
    const tty: string[] = [];
    const bar = new ProgressPrinter('auto', { write: (s) => tty.push(s), isTTY: true, columns: 140 }, 10);
    expect(bar.mode).toBe('bar');
    bar.step(p(5));
    bar.message('epoch done');
    expect(tty[0]).toMatch(/^\repoch 2\/3 \[=+> +\] 5\/10 loss 1\.2500 lr 1\.00e-3 42\.0 img\/s 1m05s ETA 1m05s/); // 15 of 30 updates in 65 s: 65 s to go
    expect(tty.slice(1)).toEqual(['\n', 'epoch done\n']);

    const ci: string[] = [];
    const lines = new ProgressPrinter('auto', { write: (s) => ci.push(s), isTTY: false }, 10);
    expect(lines.mode).toBe('lines');
    for (let b = 1; b <= 10; b++) lines.step(p(b, { gradNorm: 0.5 }));
    expect(ci).toHaveLength(5); // every ⌊10/5⌋ = 2 batches
    expect(ci[0]).toBe('epoch 2/3 batch 2/10 step 12/30 loss 1.5000 (avg 1.2500) lr 1.00e-3 |g| 0.500 42.0 img/s 1m05s ETA 1m38s\n'); // 18 updates to go at 65/12 s each
    expect(ci.every((l) => !l.includes('\r'))).toBe(true);

    const none: string[] = [];
    const off = new ProgressPrinter('none', { write: (s) => none.push(s), isTTY: true }, 10);
    off.step(p(1));
    off.message('x');
    expect(none).toEqual([]);
    expect(new ProgressPrinter('auto', undefined, 10).mode).toBe('none');
  });
});
