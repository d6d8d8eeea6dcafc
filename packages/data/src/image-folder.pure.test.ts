import { describe, it, expect } from 'vitest';
import { mkdtempSync, writeFileSync, mkdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import jpeg from 'jpeg-js';
import { loadImageFolder, loadImageFolderSplits, materialize, resizeBilinear } from '@softbias/data';
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

  it('JPEG is decoded built in (jpeg-js); other formats go through the { decode } hook', async () => {
    const root = mkdtempSync(join(tmpdir(), 'softbias-jpeg-'));
    mkdirSync(join(root, 'a'));
    const rgba = new Uint8Array(8 * 8 * 4).fill(255);
    for (let i = 0; i < 64; i++) rgba.set([200, 40, 10], i * 4);
    writeFileSync(join(root, 'a', 'x.jpg'), jpeg.encode({ width: 8, height: 8, data: rgba }, 95).data);
    const ds = await loadImageFolder(root);
    expect(ds.imageShape).toEqual([8, 8, 3]);
    const px = await ds.readImages([0]);
    for (const [i, v] of [[0, 200], [1, 40], [2, 10]] as const) expect(Math.abs(px[i]! - v)).toBeLessThanOrEqual(4);
    writeFileSync(join(root, 'a', 'y.bmp'), Buffer.from([66, 77, 1, 2, 3]));
    const custom = await loadImageFolder(root, {
      extensions: ['.bmp'],
      decode: (bytes) => ({ width: 1, height: 1, channels: 3, data: Uint8Array.from([bytes[2]!, bytes[3]!, bytes[4]!]) }),
      onWarning: () => {},
    });
    expect(Array.from(await custom.readImages([0]))).toEqual([1, 2, 3]);
    expect(custom.report.skipped).toEqual([{ path: join(root, 'a', 'x.jpg'), reason: 'not .bmp' }]);
  });

  it('bad folders and bad files', async () => {
    await expect(loadImageFolder('/nonexistent/softbias')).rejects.toThrow(/cannot read \/nonexistent\/softbias/);
    const empty = mkdtempSync(join(tmpdir(), 'softbias-empty-'));
    await expect(loadImageFolder(empty)).rejects.toThrow(/has no class sub-folders/);
    mkdirSync(join(empty, 'a'));
    await expect(loadImageFolder(empty)).rejects.toThrow(/no \.png\/\.jpg\/\.jpeg files/);
    writeFileSync(join(empty, 'a', 'broken.png'), Buffer.from('not a png at all'));
    await expect(loadImageFolder(empty)).rejects.toThrow(/broken.png: neither PNG nor JPEG/);
  });

  it('splits share the training classes: a class missing from test keeps the labels; an unknown class is refused', async () => {
    const root = mkdtempSync(join(tmpdir(), 'softbias-splits-'));
    for (const [split, classes] of [['train', ['ant', 'bee', 'cat']], ['test', ['bee', 'cat']]] as const) {
      for (const c of classes) {
        mkdirSync(join(root, split, c), { recursive: true });
        writeRgb(join(root, split, c, `${c}.png`), c.length, 4, 4);
      }
    }
    // Independently labelled (the old way), test's 'bee' would be label 0, train's 'ant'.
    const warnings: string[] = [];
    const { train, test } = await loadImageFolderSplits(root, { onWarning: (m) => warnings.push(m) });
    expect(train!.classNames).toEqual(['ant', 'bee', 'cat']);
    expect(test!.classNames).toEqual(['ant', 'bee', 'cat']);
    expect(Array.from(test!.labels)).toEqual([1, 2]);
    expect(test!.report.emptyClasses).toEqual(['ant']);
    expect(warnings).toEqual([expect.stringMatching(/test: 1 class\(es\) without images: ant/)]);
    mkdirSync(join(root, 'test', 'dog'));
    writeRgb(join(root, 'test', 'dog', 'd.png'), 1, 4, 4);
    await expect(loadImageFolderSplits(root, { onWarning: () => {} })).rejects.toThrow(
      /test has class folder\(s\) 'dog' that the class list does not have \(known classes: ant, bee, cat\)/,
    );
    // An explicit list is used for every split (label i = classes[i]).
    const given = await loadImageFolderSplits(root, { classes: ['dog', 'cat', 'bee', 'ant'], onWarning: () => {} });
    // Files in class-list order: cat (1), bee (2), ant (3); test: dog (0), cat, bee.
    expect(Array.from(given.train!.labels)).toEqual([1, 2, 3]);
    expect(Array.from(given.test!.labels)).toEqual([0, 1, 2]);
    expect(given.train!.files.map((f) => f.split('/').at(-1))).toEqual(['cat.png', 'bee.png', 'ant.png']);
    expect(given.train!.report.emptyClasses).toEqual(['dog']);
  });

  it('empty class folders and skipped entries are reported (report and warning), never dropped silently', async () => {
    const root = makeFolder();
    mkdirSync(join(root, 'empty'));
    mkdirSync(join(root, 'cat', 'nested'));
    writeFileSync(join(root, 'README'), 'a file at the root');
    const warnings: string[] = [];
    const ds = await loadImageFolder(root, { onWarning: (m) => warnings.push(m) });
    expect(ds.classNames).toEqual(['bird', 'cat', 'dog', 'empty']);
    expect(ds.report.emptyClasses).toEqual(['empty']);
    expect(ds.report.skipped.map((s) => [s.path.slice(root.length + 1), s.reason])).toEqual([
      ['.hidden', 'hidden'],
      ['README', 'not a class folder (a file at the root)'],
      ['cat/nested', 'a folder inside a class folder (not searched)'],
      ['cat/notes.txt', 'not .png/.jpg/.jpeg'],
    ]);
    expect(warnings).toHaveLength(1);
    expect(warnings[0]).toMatch(/1 class\(es\) without images: empty; skipped 4 entries: .*notes\.txt \(not \.png\/\.jpg\/\.jpeg\)/);
  });
});
