/**
 * Shared test helpers: backend selection, fixtures (copied from ../shared/fixtures into fixtures/), the
 * tolerance rule, and a per-backend worst-error report.
 */
import * as tf from '@tensorflow/tfjs-core';
import { readFileSync, appendFileSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect } from 'vitest';
import { parseSafetensors, type SafetensorsFile } from '@softbias/tensor-ops';
import { exclusionFor, reductionFor, toleranceFactor } from '../vitest.exclusions.js';
import { backendState, currentBackend, type TestBackend } from './state.js';

export { backendState, currentBackend, type TestBackend };

export const repoRoot = fileURLToPath(new URL('..', import.meta.url));
export const fixturesDir = join(repoRoot, 'fixtures');

/** `describe` that skips (with the reason in its title) when this project's backend is unavailable. */
export function describeBackend(title: string, fn: () => void): void {
  if (backendState.unavailable) describe.skip(`${title} [${backendState.unavailable}]`, fn);
  else describe(title, fn);
}

/** True (and the reason) when `id` is excluded on the current backend in vitest.exclusions.ts. */
export function excludedHere(id: string): string | undefined {
  return exclusionFor(currentBackend, id)?.reason;
}

/**
 * True when test `id` runs with less work on the current backend (REDUCTIONS in vitest.exclusions.ts). Each use
 * is recorded in .tmp/reductions.jsonl, which `npm test` reports.
 */
export function reducedHere(id: string): boolean {
  const r = reductionFor(currentBackend, id);
  if (!r) return false;
  try {
    const dir = join(repoRoot, '.tmp');
    mkdirSync(dir, { recursive: true });
    appendFileSync(join(dir, 'reductions.jsonl'), JSON.stringify({ backend: currentBackend, id, reason: r.reason }) + '\n');
  } catch {
    /* reporting is best effort */
  }
  return true;
}

let manifest: any;
export function fixtureManifest(): any {
  manifest ??= JSON.parse(readFileSync(join(fixturesDir, 'manifest.json'), 'utf8'));
  return manifest;
}

export interface Fixture {
  name: string;
  entry: any;
  config: any;
  /** Weights as float32 PyTorch-layout data (I8 tensors dequantised with their power-of-two exponents). */
  weights: Map<string, { data: Float32Array; shape: number[] }>;
  weightsFile: SafetensorsFile;
  io: SafetensorsFile;
  /** Float32 data of an io tensor. */
  get(name: string): { data: Float32Array; shape: number[] };
  /**
   * The tolerance for io tensor `name`: the fixture's own `suggested_atol` (20× its float32-vs-float64 drift, at
   * least 1e-6; see fixtures/README.md §7) × this backend's factor from vitest.exclusions.ts (1 on cpu and wasm).
   * `id` (default `<case>/<tensor>`) is what TOLERANCE_FACTORS matches.
   */
  atol(name: string, id?: string): number;
}

const fixtureCache = new Map<string, Fixture>();

/** Load a fixture case. The int8 dequantisation lives here, in the test helpers, not in the library. */
export function loadFixture(name: string): Fixture {
  const cached = fixtureCache.get(name);
  if (cached) return cached;
  const entry = fixtureManifest().cases[name];
  if (!entry) throw new Error(`no fixture case '${name}'`);
  const weightsFile = parseSafetensors(readFileSync(join(fixturesDir, entry.files.weights)));
  const io = parseSafetensors(readFileSync(join(fixturesDir, entry.files.io)));
  const exps = weightsFile.metadata['int8_pow2_exponents']
    ? (JSON.parse(weightsFile.metadata['int8_pow2_exponents']) as Record<string, number>)
    : {};
  const weights = new Map<string, { data: Float32Array; shape: number[] }>();
  for (const k of weightsFile.names()) {
    const t = weightsFile.get(k);
    if (t.dtype === 'I8') {
      const e = exps[k];
      if (e === undefined) throw new Error(`fixture ${name}: I8 tensor ${k} has no exponent`);
      const scale = 2 ** e;
      const data = new Float32Array(t.data.length);
      for (let i = 0; i < data.length; i++) data[i] = (t.data[i] as number) * scale;
      weights.set(k, { data, shape: t.shape });
    } else {
      weights.set(k, weightsFile.getFloat32(k));
    }
  }
  const f: Fixture = {
    name,
    entry,
    config: entry.config,
    weights,
    weightsFile,
    io,
    get: (n) => io.getFloat32(n),
    atol(n, id) {
      const suggested = entry.io_tensors?.[n]?.suggested_atol;
      if (typeof suggested !== 'number' || !(suggested > 0)) throw new Error(`fixture ${name}: io tensor '${n}' has no suggested_atol`);
      return suggested * toleranceFactor(currentBackend, id ?? `${name}/${n}`);
    },
  };
  fixtureCache.set(name, f);
  return f;
}

/**
 * Tolerance for comparisons with a reference computed in the test itself (float64 loops, finite differences),
 * where no fixture drift bound exists: max(atol, 1e-4·max(1, max|b|)). Fixture tensors use `Fixture.atol`
 * (their own `suggested_atol`), which is tighter.
 */
export function defaultAtol(expected: ArrayLike<number>, suggested = 0): number {
  let maxAbs = 0;
  for (let i = 0; i < expected.length; i++) maxAbs = Math.max(maxAbs, Math.abs(expected[i]!));
  return Math.max(suggested, 1e-4 * Math.max(1, maxAbs));
}

export interface CloseResult {
  maxAbsDiff: number;
  atol: number;
  worstIndex: number;
}

/** Max |a−b| of two equal-length arrays (NaN counts as Infinity) and where it is. */
export function maxAbsDiff(a: ArrayLike<number>, expected: ArrayLike<number>): { maxAbsDiff: number; worstIndex: number } {
  let worst = 0;
  let worstIndex = -1;
  for (let i = 0; i < a.length; i++) {
    const d = Math.abs(a[i]! - expected[i]!);
    if (!(d <= worst)) {
      worst = Number.isNaN(d) ? Infinity : d;
      worstIndex = i;
    }
  }
  return { maxAbsDiff: worst, worstIndex };
}

/**
 * Assert |a−b| ≤ atol element-wise (and equal shapes when `shape` is given). Records the worst error per
 * backend in .tmp/worst-errors.jsonl for the parity report.
 */
export async function expectClose(
  actual: tf.Tensor | ArrayLike<number>,
  expected: ArrayLike<number>,
  atol: number,
  label: string,
  shape?: readonly number[],
): Promise<CloseResult> {
  let a: ArrayLike<number>;
  if (actual instanceof tf.Tensor) {
    if (shape) expect(actual.shape, `${label}: shape`).toEqual([...shape]);
    a = (await actual.data()) as Float32Array;
  } else a = actual;
  expect(a.length, `${label}: length`).toBe(expected.length);
  const { maxAbsDiff: diff, worstIndex } = maxAbsDiff(a, expected);
  recordWorst(label, diff, atol);
  expect(
    diff,
    `${label}: max |a-b| = ${diff} at ${worstIndex} (got ${a[worstIndex]}, want ${expected[worstIndex]}), atol ${atol}`,
  ).toBeLessThanOrEqual(atol);
  return { maxAbsDiff: diff, atol, worstIndex };
}

/** One comparison of a fixture tensor, as a `FixtureComparison` saw it. */
export interface ComparisonResult {
  name: string;
  maxAbsDiff: number;
  atol: number;
  pass: boolean;
  /** Collect mode: the shape (or length) differed from the fixture's. */
  shapeMismatch?: boolean;
}

/**
 * The fixture comparison a parity spec makes, shared with its mutation tests: `assert` mode is the parity test
 * itself (every tensor through `expectClose`), `collect` mode records the same comparisons without asserting, so a
 * mutation test can show that a bugged model fails them.
 */
export class FixtureComparison {
  readonly results: ComparisonResult[] = [];
  constructor(
    readonly fixture: Fixture,
    readonly mode: 'assert' | 'collect',
  ) {}

  /** Compare `actual` with io tensor `name` (or with `expected`, at io tensor `atolOf`'s tolerance). */
  async close(
    name: string,
    actual: tf.Tensor | ArrayLike<number>,
    opts: { shape?: readonly number[] | null; expected?: ArrayLike<number>; atolOf?: string; label?: string } = {},
  ): Promise<ComparisonResult> {
    const f = this.fixture;
    const expected = opts.expected ?? f.get(name).data;
    const atol = f.atol(opts.atolOf ?? name);
    const label = opts.label ?? `${f.name}/${name}`;
    const shape = opts.shape === null ? undefined : (opts.shape ?? (opts.expected ? undefined : f.get(name).shape));
    if (this.mode === 'assert') {
      const r = await expectClose(actual, expected, atol, label, shape);
      const res = { name: label, maxAbsDiff: r.maxAbsDiff, atol, pass: true };
      this.results.push(res);
      return res;
    }
    // A shape that differs from the fixture's is recorded as a failure (diff Infinity, `shapeMismatch`).
    let a: ArrayLike<number>;
    let mismatch = false;
    if (actual instanceof tf.Tensor) {
      if (shape && actual.shape.join(',') !== shape.join(',')) mismatch = true;
      a = (await actual.data()) as Float32Array;
    } else a = actual;
    if (a.length !== expected.length) mismatch = true;
    const diff = mismatch ? Infinity : maxAbsDiff(a, expected).maxAbsDiff;
    const res: ComparisonResult = { name: label, maxAbsDiff: diff, atol, pass: diff <= atol, ...(mismatch ? { shapeMismatch: true } : {}) };
    this.results.push(res);
    return res;
  }

  /** The comparisons that failed (collect mode), worst ratio first. */
  failures(): ComparisonResult[] {
    return this.results.filter((r) => !r.pass).sort((a, b) => b.maxAbsDiff / b.atol - a.maxAbsDiff / a.atol);
  }
}

function recordWorst(label: string, diff: number, atol: number): void {
  try {
    const dir = join(repoRoot, '.tmp');
    mkdirSync(dir, { recursive: true });
    appendFileSync(join(dir, 'worst-errors.jsonl'), JSON.stringify({ backend: currentBackend, label, diff, atol }) + '\n');
  } catch {
    /* reporting is best effort */
  }
}

/** tfjs tensor from a fixture tensor (optionally reshaped). */
export function fixtureTensor(t: { data: Float32Array; shape: number[] }, shape?: number[]): tf.Tensor {
  return tf.tensor(t.data, shape ?? t.shape, 'float32');
}

/** Run `fn` and assert it leaves no tensor behind. */
export async function expectNoLeak<T>(fn: () => T | Promise<T>, label = 'tensors'): Promise<T> {
  const before = tf.memory().numTensors;
  const r = await fn();
  expect(tf.memory().numTensors, `${label}: tensor count after`).toBe(before);
  return r;
}

/**
 * One training-style step for checks that compare two ways of computing gradients: the loss mean(model(x)²),
 * every parameter's gradient (host copies, in `parameters()` order) and the step's peak tensor bytes.
 */
export async function gradientStep(model: { forward(x: tf.Tensor): tf.Tensor; parameters(): { variable: tf.Variable }[] }, x: tf.Tensor): Promise<{ loss: number; grads: Float32Array[]; peak: number }> {
  const vars = model.parameters().map((p) => p.variable);
  let out: { loss: number; grads: Float32Array[] } | null = null;
  const prof = await tf.profile(async () => {
    const { value, grads } = tf.variableGrads(() => tf.mean(tf.square(model.forward(x))) as tf.Scalar, vars);
    out = { loss: (await value.data())[0]!, grads: await Promise.all(vars.map(async (v) => (await grads[v.name]!.data()) as Float32Array)) };
    tf.dispose([value, ...Object.values(grads)]);
  });
  return { ...out!, peak: prof.peakBytes };
}
