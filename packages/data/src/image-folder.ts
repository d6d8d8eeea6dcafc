/**
 * Image folders (Node): `root/<class>/<image>`, one sub-folder per class, classes sorted by name (as
 * torchvision's ImageFolder). Images are decoded per batch, not up front (`materialize()` decodes all).
 *
 * PNG is decoded by the built-in decoder. JPEG needs a decoder the package does not ship: pass `decode`
 * (for example one built on a JPEG library) or convert the images to PNG.
 */
import type { ImageDataset } from './dataset.js';
import { dynamicImport, isNodeRuntime, readSource } from './bytes.js';
import { type DecodedImage, decodePng, isPng, toChannels } from './png.js';
import { resizeBilinear } from './augment.js';

export type ImageDecoder = (bytes: Uint8Array, path: string) => DecodedImage | Promise<DecodedImage>;

export interface ImageFolderOptions {
  /** Output channels: 1 (grey) or 3 (RGB, default). */
  channels?: 1 | 3;
  /** Resize every image to [H, W] (bilinear). Default: the first image's size, and every image must match it. */
  size?: number | readonly [number, number];
  /** Decoder for formats other than PNG (JPEG, …); called for every non-PNG file. */
  decode?: ImageDecoder;
  /** File extensions to include (lower case, with the dot). Default .png, .jpg, .jpeg. */
  extensions?: readonly string[];
}

const JPEG_MESSAGE =
  'JPEG decoding is not built into @softbias/data (no JPEG decoder is bundled): pass ' +
  '{ decode: (bytes, path) => ({ width, height, channels, data }) } backed by a JPEG library, or convert the images to PNG';

function isJpeg(b: Uint8Array): boolean {
  return b.length >= 3 && b[0] === 0xff && b[1] === 0xd8 && b[2] === 0xff;
}

export class ImageFolderDataset implements ImageDataset {
  readonly labels: Int32Array;
  readonly numClasses: number;
  constructor(
    readonly root: string,
    readonly files: readonly string[],
    labels: ArrayLike<number>,
    readonly classNames: readonly string[],
    readonly imageShape: readonly [number, number, number],
    private readonly resize: boolean,
    private readonly decoder: ImageDecoder | undefined,
  ) {
    this.labels = Int32Array.from(labels);
    this.numClasses = classNames.length;
  }

  get length(): number {
    return this.files.length;
  }
  get source(): string {
    return this.root;
  }

  /** Decode one file to this dataset's [H, W, C]. */
  async decodeFile(path: string): Promise<Uint8Array> {
    const img = await decodeImageFile(path, this.decoder);
    const [H, W, C] = this.imageShape;
    const px = toChannels(img, C as 1 | 3);
    if (img.height === H && img.width === W) return px;
    if (!this.resize) {
      throw new Error(
        `${path}: image is ${img.width}×${img.height} but the folder's images are ${W}×${H}; pass { size } to resize them`,
      );
    }
    const f = resizeBilinear(px, [img.height, img.width, C], H, W);
    const out = new Uint8Array(f.length);
    for (let i = 0; i < f.length; i++) out[i] = Math.min(255, Math.max(0, Math.round(f[i]!)));
    return out;
  }

  async readImages(indices: ArrayLike<number>): Promise<Uint8Array> {
    const [H, W, C] = this.imageShape;
    const size = H * W * C;
    const out = new Uint8Array(indices.length * size);
    const decoded = await Promise.all(
      Array.from(indices, (i) => {
        if (!(Number.isInteger(i) && i >= 0 && i < this.files.length)) throw new RangeError(`sample index ${i} out of range`);
        return this.decodeFile(this.files[i]!);
      }),
    );
    decoded.forEach((px, k) => {
      out.set(px, k * size);
    });
    return out;
  }
}

/** Decode an image file: PNG built in; other formats through `decode`. */
export async function decodeImageFile(path: string, decode?: ImageDecoder): Promise<DecodedImage> {
  const bytes = await readSource(path);
  if (isPng(bytes)) return decodePng(bytes, path);
  if (decode) return decode(bytes, path);
  if (isJpeg(bytes)) throw new Error(`${path}: ${JPEG_MESSAGE}`);
  throw new Error(`${path}: not a PNG file (and no { decode } given for other formats)`);
}

/** Scan `root/<class>/*` and return a lazily decoded dataset. */
export async function loadImageFolder(root: string, opts: ImageFolderOptions = {}): Promise<ImageFolderDataset> {
  if (!isNodeRuntime) throw new Error('loadImageFolder reads folders and exists only in Node');
  const fs = await dynamicImport('node:fs/promises');
  const channels = opts.channels ?? 3;
  if (channels !== 1 && channels !== 3) throw new Error(`loadImageFolder: channels must be 1 or 3, got ${channels}`);
  const exts = (opts.extensions ?? ['.png', '.jpg', '.jpeg']).map((e) => e.toLowerCase());
  let entries: { name: string; isDirectory(): boolean }[];
  try {
    entries = await fs.readdir(root, { withFileTypes: true });
  } catch (e) {
    throw new Error(`loadImageFolder: cannot read ${root}: ${(e as Error).message}`);
  }
  const classNames = entries
    .filter((e) => e.isDirectory() && !e.name.startsWith('.'))
    .map((e) => e.name)
    .sort();
  if (classNames.length === 0) throw new Error(`loadImageFolder: ${root} has no class sub-folders (expected root/<class>/<image>)`);
  const files: string[] = [];
  const labels: number[] = [];
  for (let c = 0; c < classNames.length; c++) {
    const dir = `${root.replace(/\/$/, '')}/${classNames[c]}`;
    const names = ((await fs.readdir(dir)) as string[])
      .filter((n) => !n.startsWith('.') && exts.some((e) => n.toLowerCase().endsWith(e)))
      .sort();
    for (const n of names) {
      files.push(`${dir}/${n}`);
      labels.push(c);
    }
  }
  if (files.length === 0) throw new Error(`loadImageFolder: no ${exts.join('/')} files under ${root}/<class>/`);
  const jpegs = files.filter((f) => /\.jpe?g$/i.test(f));
  if (jpegs.length > 0 && !opts.decode) {
    throw new Error(`loadImageFolder: ${jpegs.length} JPEG file(s) under ${root} (e.g. ${jpegs[0]}). ${JPEG_MESSAGE}`);
  }
  let H: number;
  let W: number;
  const resize = opts.size !== undefined;
  if (opts.size !== undefined) {
    [H, W] = typeof opts.size === 'number' ? [opts.size, opts.size] : [opts.size[0], opts.size[1]];
    if (!(Number.isInteger(H) && H > 0 && Number.isInteger(W) && W > 0)) throw new RangeError(`loadImageFolder: bad size [${opts.size}]`);
  } else {
    const first = await decodeImageFile(files[0]!, opts.decode);
    H = first.height;
    W = first.width;
  }
  return new ImageFolderDataset(root, files, labels, classNames, [H, W, channels], resize, opts.decode);
}
