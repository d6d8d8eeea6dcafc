/**
 * Checkpoints against real damaged files, links and interrupted writes: a checksum of the tensor data,
 * validated metadata, the file named in every error, nothing changed by a failed load, stale temporaries
 * removed, symbolic links written through.
 */
import * as tf from '@tensorflow/tfjs-core';
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import { spawnSync, execFileSync } from 'node:child_process';
import { existsSync, lstatSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, readlinkSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseSafetensors, serializeSafetensors, type WriteTensor } from '@softbias/tensor-ops';
import { AdamW, ModelEma, checkpointBytes, loadCheckpoint, saveCheckpoint, crossEntropy } from '@softbias/train';
import { TinyViT } from '../test/tiny-model.js';

const cfg = { imgSize: 8, patchSize: 4, inChans: 1, dim: 8, depth: 1, heads: 2, numClasses: 3, dropPath: 0.2 };
const META = 'softbias.checkpoint';

interface Trained {
  model: TinyViT;
  opt: AdamW;
  ema: ModelEma;
}

function trained(seed: number, steps = 2): Trained {
  const model = new TinyViT({ ...cfg, seed });
  const opt = new AdamW(model, { lr: 1e-2 });
  const ema = new ModelEma(model, { decay: 0.5 });
  const x = tf.randomNormal([4, 8, 8, 1], 0, 1, 'float32', seed);
  const y = tf.tensor1d([0, 1, 2, 1], 'int32');
  model.train();
  for (let s = 0; s < steps; s++) {
    const { value, grads } = tf.variableGrads(() => crossEntropy(model.forward(x), y), opt.variables());
    const g = opt.gradsByName(grads);
    opt.applyGradients(g);
    ema.update(model);
    tf.dispose([value, ...g.values()]);
  }
  tf.dispose([x, y]);
  return { model, opt, ema };
}

const dispose = (t: Trained) =>
  [t.opt, t.ema, t.model].forEach((d) => {
    d.dispose();
  });

/** Every value of the state: weights, moments and steps, EMA, generators. */
async function snapshot(t: Trained): Promise<string> {
  const out: unknown[] = [];
  for (const [n, p] of t.model.namedParameters()) {
    out.push(n, Array.from(await p.variable.data()));
    const s = t.opt.slot(n);
    if (s) out.push(s.step, Array.from(await s.m.data()), Array.from(await s.v.data()));
  }
  for (const [n, v] of t.ema.shadow) out.push(n, Array.from(await v.data()));
  out.push(t.ema.updates);
  return JSON.stringify(out);
}

/** Rebuild a checkpoint's bytes with tensors dropped or changed and the metadata patched; `fixCrc` re-stamps the checksum. */
function rewrite(
  bytes: Uint8Array,
  edit: { drop?: string[]; change?: (name: string, t: WriteTensor) => WriteTensor; meta?: (m: Record<string, unknown>) => void; fixCrc?: boolean },
): Uint8Array {
  const f = parseSafetensors(bytes);
  const tensors: [string, WriteTensor][] = f.names().filter((n) => !edit.drop?.includes(n)).map((n) => {
    const t = f.getFloat32(n);
    return [n, edit.change ? edit.change(n, t) : t];
  });
  const meta = JSON.parse(f.metadata[META]!) as Record<string, unknown>;
  edit.meta?.(meta);
  if (edit.fixCrc !== false && meta['dataCrc32'] !== undefined) {
    const probe = parseSafetensors(serializeSafetensors(tensors));
    meta['dataCrc32'] = zlibCrc(probe.dataSection());
  }
  return serializeSafetensors(tensors, { metadata: { ...f.metadata, [META]: JSON.stringify(meta) } });
}

let zlibCrc: (b: Uint8Array) => number;
let dir = '';
let src: Trained;
let good: Uint8Array;

beforeAll(async () => {
  zlibCrc = (await import('node:zlib')).crc32 as (b: Uint8Array) => number;
  dir = mkdtempSync(join(tmpdir(), 'softbias-ckpt-faults-'));
  src = trained(1);
  good = await checkpointBytes({ model: src.model, optimizer: src.opt, ema: src.ema, step: 2 });
});
afterAll(() => dispose(src));

/** Load `bytes` (written to a file) into a fresh state; expect an error matching `re` that names the file and no change. */
async function expectRefused(label: string, bytes: Uint8Array, re: RegExp): Promise<void> {
  const path = join(dir, `${label}.safetensors`);
  writeFileSync(path, bytes);
  const dst = trained(7, 1);
  const before = await snapshot(dst);
  const err = await loadCheckpoint(path, { model: dst.model, optimizer: dst.opt, ema: dst.ema }).then(
    () => undefined,
    (e: Error) => e,
  );
  expect(err, label).toBeInstanceOf(Error);
  expect(err!.message).toContain(path);
  expect(err!.message).toMatch(re);
  expect(await snapshot(dst), `${label}: the failed load changed the state`).toBe(before);
  dispose(dst);
}

describe('checkpoint integrity', () => {
  it('stores a CRC-32 of the tensor data (zlib-compatible) and a good file loads', async () => {
    const f = parseSafetensors(good);
    const meta = JSON.parse(f.metadata[META]!) as { dataCrc32?: number };
    expect(meta.dataCrc32).toBe(zlibCrc(f.dataSection()));
    const dst = trained(7, 1);
    const path = join(dir, 'good.safetensors');
    writeFileSync(path, good);
    await loadCheckpoint(path, { model: dst.model, optimizer: dst.opt, ema: dst.ema });
    expect(await snapshot(dst)).toBe(await snapshot(src));
    dispose(dst);
  });

  it('a flipped byte in the tensor data is refused (checksum), naming the file', async () => {
    const bad = Uint8Array.from(good);
    bad[bad.length - 7] ^= 0x10;
    await expectRefused('flipped', bad, /checksum mismatch/);
  });

  it('negative, fractional and non-numeric steps are refused', async () => {
    await expectRefused('neg-step', rewrite(good, { meta: (m) => (m['step'] = -3) }), /step must be a non-negative integer, got -3/);
    await expectRefused('frac-step', rewrite(good, { meta: (m) => (m['step'] = 2.5) }), /step must be a non-negative integer, got 2.5/);
    await expectRefused('str-step', rewrite(good, { meta: (m) => (m['step'] = '2') }), /step must be a non-negative integer/);
    await expectRefused(
      'neg-opt-step',
      rewrite(good, { meta: (m) => ((m['optimizer'] as { steps: Record<string, number> }).steps['head.weight'] = -1) }),
      /optimizer step of 'head.weight' must be a non-negative integer/,
    );
  });

  it('a failed load changes nothing: a missing moment, a mis-shaped or non-finite EMA tensor, a missing generator', async () => {
    const last = parseSafetensors(good).names().filter((n) => n.startsWith('optimizer.exp_avg_sq.')).pop()!;
    await expectRefused('missing-moment', rewrite(good, { drop: [last] }), new RegExp(`lacks tensor '${last.replace(/\./g, '\\.')}'`));
    await expectRefused(
      'nan-ema',
      rewrite(good, { change: (n, t) => (n === 'ema.head.bias' ? { data: Float32Array.from(t.data, (v, i) => (i === 1 ? NaN : v)), shape: t.shape } : t) }),
      /'ema\.head\.bias' holds NaN/,
    );
    await expectRefused(
      'shape-ema',
      rewrite(good, { change: (n, t) => (n === 'ema.head.bias' ? { data: new Float32Array(4), shape: [4] } : t) }),
      /'ema\.head\.bias' has shape \[4\]/,
    );
    await expectRefused('no-rng', rewrite(good, { meta: (m) => (m['rngs'] = {}) }), /no state for random generator '/);
  });

  it('a missing file and a plain weights file name the file', async () => {
    const dst = trained(7, 1);
    const missing = join(dir, 'nope.safetensors');
    await expect(loadCheckpoint(missing, { model: dst.model })).rejects.toThrow(new RegExp(`${missing}.*ENOENT`));
    const plain = join(dir, 'plain.safetensors');
    writeFileSync(plain, serializeSafetensors({ a: { data: new Float32Array(1), shape: [1] } }));
    await expect(loadCheckpoint(plain, { model: dst.model })).rejects.toThrow(new RegExp(`${plain}.*not a softbias training checkpoint`));
    dispose(dst);
  });

  it('old checkpoints (no checksum) still load', async () => {
    const old = rewrite(good, { meta: (m) => delete m['dataCrc32'], fixCrc: false });
    const dst = trained(7, 1);
    await loadCheckpoint(old, { model: dst.model, optimizer: dst.opt, ema: dst.ema });
    expect(await snapshot(dst)).toBe(await snapshot(src));
    dispose(dst);
  });
});

describe('saving checkpoints', () => {
  it('removes a temporary file left by a process killed mid-save, keeps a live process\u2019s', async () => {
    const path = join(dir, 'interrupted.safetensors');
    // A real process starts an atomic-style write and dies by SIGKILL before renaming.
    const child = spawnSync(
      process.execPath,
      ['-e', `const fs=require('fs');fs.writeFileSync(process.argv[1]+'.tmp-'+process.pid+'-'+Date.now()+'-abc123', Buffer.alloc(4096));process.kill(process.pid,'SIGKILL')`, path],
      { encoding: 'utf8' },
    );
    expect(child.signal).toBe('SIGKILL');
    const live = `interrupted.safetensors.tmp-1-${Date.now()}-live01`; // pid 1 is alive
    writeFileSync(join(dir, live), 'x');
    const temps = () => readdirSync(dir).filter((n) => n.startsWith('interrupted.safetensors.tmp-'));
    expect(temps()).toHaveLength(2);
    await saveCheckpoint(path, { model: src.model, step: 2 });
    expect(temps()).toEqual([live]);
    expect(parseSafetensors(readFileSync(path)).has('head.weight')).toBe(true);
  });

  it('writes through a symbolic link (relative or dangling) instead of replacing it', async () => {
    mkdirSync(join(dir, 'real'));
    const target = join(dir, 'real', 'ckpt.safetensors');
    writeFileSync(target, 'old');
    const link = join(dir, 'link.safetensors');
    symlinkSync('real/ckpt.safetensors', link);
    await saveCheckpoint(link, { model: src.model, optimizer: src.opt, ema: src.ema, step: 2 });
    expect(lstatSync(link).isSymbolicLink()).toBe(true);
    expect(readlinkSync(link)).toBe('real/ckpt.safetensors');
    expect(Buffer.compare(readFileSync(target), Buffer.from(good))).toBe(0);
    const dangling = join(dir, 'dangling.safetensors');
    symlinkSync(join(dir, 'real', 'new.safetensors'), dangling);
    await saveCheckpoint(dangling, { model: src.model, step: 2 });
    expect(lstatSync(dangling).isSymbolicLink()).toBe(true);
    expect(existsSync(join(dir, 'real', 'new.safetensors'))).toBe(true);
  });

  it('refuses to replace a FIFO or a directory, naming the path', async () => {
    const fifo = join(dir, 'fifo.safetensors');
    execFileSync('mkfifo', [fifo]);
    await expect(saveCheckpoint(fifo, { model: src.model, step: 2 })).rejects.toThrow(new RegExp(`${fifo}.*FIFO`));
    expect(lstatSync(fifo).isFIFO()).toBe(true);
    const d = join(dir, 'adir.safetensors');
    mkdirSync(d);
    await expect(saveCheckpoint(d, { model: src.model, step: 2 })).rejects.toThrow(new RegExp(`${d}.*directory`));
    expect(readdirSync(dir).filter((n) => n.includes('.tmp-') && !n.includes('-live01'))).toEqual([]);
  });

  it('refuses to write a negative or fractional step', async () => {
    await expect(checkpointBytes({ model: src.model, step: -1 })).rejects.toThrow(/non-negative integer/);
    await expect(checkpointBytes({ model: src.model, step: 1.5 })).rejects.toThrow(/non-negative integer/);
  });
});
