#!/usr/bin/env node
// Regenerates the embedded Fashion-MNIST subset in assets/fashion-mnist/ from the full set (Debian's
// dataset-fashion-mnist, or a folder given as the first argument): PER_CLASS_TRAIN training and PER_CLASS_TEST
// test images per class, chosen at random with SEED, kept in their original order, written as gzipped IDX under
// the original file names. Deterministic: the same inputs and seed give byte-identical files.
//
//   node packages/data/scripts/make-subset.mjs [/usr/share/datasets/fashion-mnist] [--train 300] [--test 100] [--seed 0]
import { readFileSync, writeFileSync, mkdirSync, existsSync } from 'node:fs';
import { gunzipSync, gzipSync } from 'node:zlib';
import { fileURLToPath } from 'node:url';
import { join } from 'node:path';

const args = process.argv.slice(2);
const opt = (name, dflt) => {
  const i = args.indexOf(`--${name}`);
  return i >= 0 ? Number(args[i + 1]) : dflt;
};
const src = args.find((a, i) => !a.startsWith('--') && !(i > 0 && args[i - 1].startsWith('--'))) ?? '/usr/share/datasets/fashion-mnist';
const PER_CLASS_TRAIN = opt('train', 300);
const PER_CLASS_TEST = opt('test', 100);
const SEED = opt('seed', 0);
const out = fileURLToPath(new URL('../assets/fashion-mnist/', import.meta.url));

function readIdx(path) {
  let b = readFileSync(existsSync(path + '.gz') ? path + '.gz' : path);
  if (b[0] === 0x1f && b[1] === 0x8b) b = gunzipSync(b);
  if (b[0] !== 0 || b[1] !== 0 || b[2] !== 0x08) throw new Error(`${path}: not a uint8 IDX file`);
  const nd = b[3];
  const shape = [];
  for (let d = 0; d < nd; d++) shape.push(b.readUInt32BE(4 + 4 * d));
  return { shape, data: b.subarray(4 + 4 * nd) };
}

function writeIdx(path, shape, data) {
  const header = Buffer.alloc(4 + 4 * shape.length);
  header[2] = 0x08;
  header[3] = shape.length;
  shape.forEach((n, d) => {
    header.writeUInt32BE(n, 4 + 4 * d);
  });
  writeFileSync(path, gzipSync(Buffer.concat([header, Buffer.from(data)]), { level: 9 }));
}

// splitmix32: a small seeded generator for the choice.
function rng(seed) {
  let x = seed >>> 0;
  return () => {
    x = (x + 0x9e3779b9) >>> 0;
    let z = x;
    z = Math.imul(z ^ (z >>> 16), 0x85ebca6b) >>> 0;
    z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35) >>> 0;
    return ((z ^ (z >>> 16)) >>> 0) / 4294967296;
  };
}

function pick(labels, perClass, seed) {
  const chosen = [];
  for (let c = 0; c < 10; c++) {
    const members = [];
    for (let i = 0; i < labels.length; i++) if (labels[i] === c) members.push(i);
    if (members.length < perClass) throw new Error(`class ${c} has only ${members.length} samples`);
    const r = rng(seed * 16 + c);
    for (let i = members.length - 1; i > 0; i--) {
      const j = Math.floor(r() * (i + 1));
      [members[i], members[j]] = [members[j], members[i]];
    }
    chosen.push(...members.slice(0, perClass));
  }
  return chosen.sort((a, b) => a - b);
}

mkdirSync(out, { recursive: true });
for (const [split, perClass, seedOffset] of [['train', PER_CLASS_TRAIN, 0], ['t10k', PER_CLASS_TEST, 1]]) {
  const images = readIdx(join(src, `${split}-images-idx3-ubyte`));
  const labels = readIdx(join(src, `${split}-labels-idx1-ubyte`));
  const [n, h, w] = images.shape;
  if (labels.shape[0] !== n) throw new Error(`${split}: ${n} images, ${labels.shape[0]} labels`);
  const idx = pick(labels.data, perClass, SEED * 2 + seedOffset);
  const img = new Uint8Array(idx.length * h * w);
  const lab = new Uint8Array(idx.length);
  idx.forEach((i, k) => {
    img.set(images.data.subarray(i * h * w, (i + 1) * h * w), k * h * w);
    lab[k] = labels.data[i];
  });
  writeIdx(join(out, `${split}-images-idx3-ubyte.gz`), [idx.length, h, w], img);
  writeIdx(join(out, `${split}-labels-idx1-ubyte.gz`), [idx.length], lab);
  if (split === 'train') {
    let s = 0;
    let s2 = 0;
    for (const v of images.data) {
      s += v / 255;
      s2 += (v / 255) ** 2;
    }
    const N = images.data.length;
    const mean = s / N;
    console.log(`full training set: mean ${mean.toFixed(7)}, std ${Math.sqrt(s2 / N - mean * mean).toFixed(7)}`);
  }
  console.log(`${split}: ${idx.length} images (${perClass} per class) → ${out}`);
}
