/**
 * Progress output for `fit`: a one-line bar redrawn in place on a terminal, plain lines elsewhere (CI, pipes,
 * files), nothing when asked.
 */

export interface ProgressOutput {
  write(text: string): void;
  /** True for a terminal (the bar is redrawn with '\r'). */
  isTTY?: boolean;
  /** Terminal width. */
  columns?: number;
}

export interface FitProgress {
  phase: 'train' | 'eval';
  /** 0-based epoch. */
  epoch: number;
  epochs: number;
  /** Updates done in total. */
  step: number;
  totalSteps: number;
  /** Batches done in this epoch. */
  batch: number;
  batchesPerEpoch: number;
  /** Loss of the last update, and the running mean over the epoch. */
  loss: number;
  epochLoss: number;
  lr: number;
  gradNorm?: number;
  /** Training images per second over the last update. */
  imagesPerSecond: number;
  elapsedMs: number;
}

export type ProgressMode = 'auto' | 'bar' | 'lines' | 'none';

/** The default output: process.stdout in Node, nothing elsewhere. */
export function defaultOutput(): ProgressOutput | undefined {
  const p = (globalThis as { process?: { stdout?: { write(s: string): unknown; isTTY?: boolean; columns?: number } } }).process;
  const out = p?.stdout;
  if (!out) return undefined;
  return {
    write: (s) => void out.write(s),
    get isTTY() {
      return Boolean(out.isTTY);
    },
    get columns() {
      return out.columns;
    },
  };
}

const fmtLr = (lr: number) => lr.toExponential(2);
const fmtTime = (ms: number) => {
  const s = Math.round(ms / 1000);
  return s >= 3600 ? `${Math.floor(s / 3600)}h${String(Math.floor((s % 3600) / 60)).padStart(2, '0')}m` : `${Math.floor(s / 60)}m${String(s % 60).padStart(2, '0')}s`;
};

/** Time left at the run's mean pace so far (elapsed per update × updates to go), '?' before the first update. */
const eta = (p: FitProgress) => (p.step > 0 ? fmtTime((p.elapsedMs / p.step) * Math.max(0, p.totalSteps - p.step)) : '?');

export class ProgressPrinter {
  readonly mode: 'bar' | 'lines' | 'none';
  private barShown = false;
  private readonly every: number;

  constructor(
    mode: ProgressMode,
    private readonly out: ProgressOutput | undefined,
    batchesPerEpoch: number,
  ) {
    if (!out || mode === 'none') this.mode = 'none';
    else if (mode === 'auto') this.mode = out.isTTY ? 'bar' : 'lines';
    else this.mode = mode;
    this.every = Math.max(1, Math.floor(batchesPerEpoch / 5));
  }

  /** The text of one progress line (also used for plain lines). */
  static line(p: FitProgress): string {
    return (
      `epoch ${p.epoch + 1}/${p.epochs} batch ${p.batch}/${p.batchesPerEpoch} step ${p.step}/${p.totalSteps} ` +
      `loss ${p.loss.toFixed(4)} (avg ${p.epochLoss.toFixed(4)}) lr ${fmtLr(p.lr)}` +
      (p.gradNorm !== undefined ? ` |g| ${p.gradNorm.toFixed(3)}` : '') +
      ` ${p.imagesPerSecond.toFixed(1)} img/s ${fmtTime(p.elapsedMs)} ETA ${eta(p)}`
    );
  }

  step(p: FitProgress): void {
    if (this.mode === 'none') return;
    if (this.mode === 'lines') {
      if (p.batch % this.every === 0 || p.batch === p.batchesPerEpoch) this.out!.write(ProgressPrinter.line(p) + '\n');
      return;
    }
    const width = Math.max(10, Math.min(30, (this.out!.columns ?? 100) - 100));
    const filled = Math.round((width * p.batch) / p.batchesPerEpoch);
    const bar = `[${'='.repeat(Math.max(0, filled - 1))}${filled > 0 ? (filled === width ? '=' : '>') : ''}${' '.repeat(width - filled)}]`;
    const text = `epoch ${p.epoch + 1}/${p.epochs} ${bar} ${p.batch}/${p.batchesPerEpoch} loss ${p.epochLoss.toFixed(4)} lr ${fmtLr(p.lr)} ${p.imagesPerSecond.toFixed(1)} img/s ${fmtTime(p.elapsedMs)} ETA ${eta(p)}`;
    const cols = this.out!.columns ?? 120;
    this.out!.write('\r' + text.slice(0, cols - 1).padEnd(Math.min(cols - 1, text.length + 2)));
    this.barShown = true;
  }

  /** A message on its own line (ends the bar line first). */
  message(text: string): void {
    if (this.mode === 'none') return;
    if (this.barShown) {
      this.out!.write('\n');
      this.barShown = false;
    }
    this.out!.write(text + '\n');
  }
}
