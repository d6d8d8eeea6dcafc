import { describe, it, expect } from 'vitest';
import { mkdtempSync, writeFileSync, mkdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadImageFolder, materialize, resizeBilinear } from '@softbias/data';
import { encodePng } from '../test/png-writer.js';

/** RGB pixel (y, x, c) of image k. */
const pix = (k: number, y: number, x: number, c: number) => (k * 40 + y * 11 + x * 5 + c * 70) % 256;

function writeRgb(path: string, k: number, W: number, H: number, colorType: 2 | 6 = 2): void {
  const spp = colorType === 2 ? 3 : 4;
  const samples: number[] = [];
  for (let y = 0; y < H; y++) for (let x = 0; x < W; x++) for (let c = 0; c < spp; c++) samples.push(c === 3 ? 128 : pix(k, y, x, c));
  writeFileSync(path, encodePng({ width: W, height: H, colorType, depth: 8, samples, filter: (y) => (y + k) % 5 }));
}

function makeFolder(): string {
  const root = mkdtempSync(join(tmpdir(), 'softbias-folder-'));
  // Classes sorted by name: 'bird' = 0, 'cat' = 1, 'dog' = 2. Files sorted within each class.
  for (const [cls, ks] of [['dog', [4, 5]], ['bird', [0]], ['cat', [2, 1, 3]]] as const) {
    mkdirSync(join(root, cls));
    for (const k of ks) writeRgb(join(root, cls, `img${k}.png`), k, 6, 5, k === 3 ? 6 : 2);
  }
  writeFileSync(join(root, 'cat', 'notes.txt'), 'not an image');
  mkdirSync(join(root, '.hidden'));
  return root;
}

describe('image folders', () => {
  it('one class per sub-folder, sorted; PNGs decoded per batch', async () => {
    const ds = await loadImageFolder(makeFolder());
    expect(ds.classNames).toEqual(['bird', 'cat', 'dog']);
    expect(ds.length).toBe(6);
    expect(Array.from(ds.labels)).toEqual([0, 1, 1, 1, 2, 2]);
    expect(ds.imageShape).toEqual([5, 6, 3]);
    const ks = [0, 1, 2, 3, 4, 5];
    const px = await ds.readImages([5, 0, 3]);
    expect(px.length).toBe(3 * 90);
    [5, 0, 3].forEach((i, n) => {
      const k = ks[i]!;
      for (const [y, x, c] of [[0, 0, 0], [4, 5, 2], [2, 3, 1]] as const) expect(px[n * 90 + (y * 6 + x) * 3 + c]).toBe(pix(k, y, x, c));
    });
    const mem = await materialize(ds, 4);
    expect(Array.from(mem.image(3))).toEqual(Array.from(await ds.readImages([3])));
    const grey = await loadImageFolder(ds.root, { channels: 1 });
    const g = await grey.readImages([1]);
    expect(g[0]).toBe(Math.round((pix(1, 0, 0, 0) * 299 + pix(1, 0, 0, 1) * 587 + pix(1, 0, 0, 2) * 114) / 1000));
  });

  it('resizes to { size } bilinearly; refuses mixed sizes without it', async () => {
    const root = makeFolder();
    writeRgb(join(root, 'dog', 'img9.png'), 9, 4, 4);
    await expect((await loadImageFolder(root)).readImages([6])).rejects.toThrow(/img9.png: image is 4×4 but the folder's images are 6×5; pass \{ size \}/);
    const ds = await loadImageFolder(root, { size: 3 });
    expect(ds.imageShape).toEqual([3, 3, 3]);
    const got = await ds.readImages([6]);
    const src = Uint8Array.from({ length: 48 }, (_, i) => pix(9, Math.floor(i / 12), Math.floor(i / 3) % 4, i % 3));
    const want = resizeBilinear(src, [4, 4, 3], 3, 3);
    expect(Array.from(got)).toEqual(Array.from(want, (v) => Math.round(v)));
  });

  it('JPEG needs a decoder: a clear error, or the { decode } hook', async () => {
    const root = mkdtempSync(join(tmpdir(), 'softbias-jpeg-'));
    mkdirSync(join(root, 'a'));
    writeFileSync(join(root, 'a', 'x.jpg'), Buffer.from([0xff, 0xd8, 0xff, 0xe0, 1, 2, 3]));
    await expect(loadImageFolder(root)).rejects.toThrow(/1 JPEG file\(s\).*JPEG decoding is not built into @softbias\/data/);
    const ds = await loadImageFolder(root, {
      decode: (bytes) => ({ width: 1, height: 1, channels: 3, data: Uint8Array.from([bytes[4]!, bytes[5]!, bytes[6]!]) }),
    });
    expect(Array.from(await ds.readImages([0]))).toEqual([1, 2, 3]);
  });

  it('bad folders and bad files', async () => {
    await expect(loadImageFolder('/nonexistent/softbias')).rejects.toThrow(/cannot read \/nonexistent\/softbias/);
    const empty = mkdtempSync(join(tmpdir(), 'softbias-empty-'));
    await expect(loadImageFolder(empty)).rejects.toThrow(/has no class sub-folders/);
    mkdirSync(join(empty, 'a'));
    await expect(loadImageFolder(empty)).rejects.toThrow(/no \.png\/\.jpg\/\.jpeg files/);
    writeFileSync(join(empty, 'a', 'broken.png'), Buffer.from('not a png at all'));
    await expect(loadImageFolder(empty)).rejects.toThrow(/broken.png: not a PNG file/);
  });
});
