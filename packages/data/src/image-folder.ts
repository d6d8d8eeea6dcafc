/**
 * Image folders (Node): `root/<class>/<image>`, one sub-folder per class, classes sorted by name (as
 * torchvision's ImageFolder). Images are decoded per batch, not up front (`materialize()` decodes all).
 *
 * PNG and JPEG are decoded by ./image.ts (fast-png, jpeg-js, with the decoded-size bound); `decode` handles
 * other formats. Splits share one class list: `loadImageFolderSplits` takes it from the first split (train) or
 * from `classes`, and a split with a class outside the list is refused. Empty class folders and every skipped
 * entry are reported (`dataset.report`, and `onWarning`, console.warn by default): nothing is dropped silently.
 */
import type { ImageDataset } from './dataset.js';
import { dynamicImport, isNodeRuntime, readSource } from './bytes.js';
import { type DecodedImage, type ImageLimits, decodeImage, isJpeg, isPng, toChannels } from './image.js';
import { resizeBilinear } from './augment.js';

export type ImageDecoder = (bytes: Uint8Array, path: string) => DecodedImage | Promise<DecodedImage>;

export interface ImageFolderOptions {
  /** Output channels: 1 (grey) or 3 (RGB, default). */
  channels?: 1 | 3;
  /** Resize every image to [H, W] (bilinear). Default: the first image's size, and every image must match it. */
  size?: number | readonly [number, number];
  /** Decoder for formats other than PNG and JPEG; called for every file that is neither. */
  decode?: ImageDecoder;
  /** File extensions to include (lower case, with the dot). Default .png, .jpg, .jpeg. */
  extensions?: readonly string[];
  /**
   * The class list (label i = classes[i]). Default: this folder's sub-folders, sorted. Given, a sub-folder not in
   * it is refused (its label would be undefined) and a class without a folder is reported.
   */
  classes?: readonly string[];
  /** Decoded-size limits per image (see decodeImage). */
  limits?: ImageLimits;
  /** Called with a summary of what was skipped or empty (default console.warn; pass () => {} to silence). */
  onWarning?: (message: string) => void;
}

/** What loading a folder left out or found empty. */
export interface ImageFolderReport {
  /** Classes with no image (an empty folder, or a class of `classes` without a folder). */
  emptyClasses: string[];
  /** Entries not used, with the reason (hidden files, other extensions, nested folders, files at the root, …). */
  skipped: { path: string; reason: string }[];
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
    readonly report: ImageFolderReport = { emptyClasses: [], skipped: [] },
    private readonly limits: ImageLimits = {},
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
    const img = await decodeImageFile(path, this.decoder, this.limits);
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

/** Decode an image file: PNG and JPEG built in (size-bounded); other formats through `decode`. */
export async function decodeImageFile(path: string, decode?: ImageDecoder, limits: ImageLimits = {}): Promise<DecodedImage> {
  const bytes = await readSource(path);
  if (isPng(bytes) || isJpeg(bytes)) return decodeImage(bytes, path, limits);
  if (decode) return decode(bytes, path);
  throw new Error(`${path}: neither PNG nor JPEG (and no { decode } given for other formats)`);
}

function summarize(root: string, report: ImageFolderReport): string | undefined {
  const parts: string[] = [];
  if (report.emptyClasses.length > 0) parts.push(`${report.emptyClasses.length} class(es) without images: ${report.emptyClasses.join(', ')}`);
  if (report.skipped.length > 0) {
    const shown = report.skipped.slice(0, 5).map((s) => `${s.path} (${s.reason})`);
    parts.push(`skipped ${report.skipped.length} entr${report.skipped.length === 1 ? 'y' : 'ies'}: ${shown.join('; ')}${report.skipped.length > 5 ? '; …' : ''}`);
  }
  return parts.length ? `loadImageFolder ${root}: ${parts.join('; ')}` : undefined;
}

/** Scan `root/<class>/*` and return a lazily decoded dataset (what was skipped is in `report`). */
export async function loadImageFolder(root: string, opts: ImageFolderOptions = {}): Promise<ImageFolderDataset> {
  if (!isNodeRuntime) throw new Error('loadImageFolder reads folders and exists only in Node');
  const fs = await dynamicImport('node:fs/promises');
  const channels = opts.channels ?? 3;
  if (channels !== 1 && channels !== 3) throw new Error(`loadImageFolder: channels must be 1 or 3, got ${channels}`);
  const exts = (opts.extensions ?? ['.png', '.jpg', '.jpeg']).map((e) => e.toLowerCase());
  const base = root.replace(/\/$/, '');
  let entries: { name: string; isDirectory(): boolean; isFile(): boolean }[];
  try {
    entries = await fs.readdir(root, { withFileTypes: true });
  } catch (e) {
    throw new Error(`loadImageFolder: cannot read ${root}: ${(e as Error).message}`);
  }
  const report: ImageFolderReport = { emptyClasses: [], skipped: [] };
  const folders: string[] = [];
  for (const e of [...entries].sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0))) {
    if (e.name.startsWith('.')) report.skipped.push({ path: `${base}/${e.name}`, reason: 'hidden' });
    else if (e.isDirectory()) folders.push(e.name);
    else report.skipped.push({ path: `${base}/${e.name}`, reason: 'not a class folder (a file at the root)' });
  }
  let classNames: string[];
  if (opts.classes) {
    classNames = [...opts.classes];
    const dup = classNames.find((c, i) => classNames.indexOf(c) !== i);
    if (dup !== undefined) throw new Error(`loadImageFolder: class '${dup}' is listed twice in { classes }`);
    const unknown = folders.filter((f) => !classNames.includes(f));
    if (unknown.length > 0) {
      throw new Error(
        `loadImageFolder: ${root} has class folder(s) ${unknown.map((u) => `'${u}'`).join(', ')} that the class list does not have ` +
          `(known classes: ${classNames.join(', ')}); every split must use the training split's classes`,
      );
    }
  } else classNames = folders;
  if (classNames.length === 0) throw new Error(`loadImageFolder: ${root} has no class sub-folders (expected root/<class>/<image>)`);
  const files: string[] = [];
  const labels: number[] = [];
  for (let c = 0; c < classNames.length; c++) {
    const name = classNames[c]!;
    if (!folders.includes(name)) {
      report.emptyClasses.push(name);
      continue;
    }
    const dir = `${base}/${name}`;
    const inside = ((await fs.readdir(dir, { withFileTypes: true })) as { name: string; isFile(): boolean; isDirectory(): boolean }[]).sort((a, b) =>
      a.name < b.name ? -1 : a.name > b.name ? 1 : 0,
    );
    let n = 0;
    for (const e of inside) {
      const path = `${dir}/${e.name}`;
      if (e.name.startsWith('.')) report.skipped.push({ path, reason: 'hidden' });
      else if (e.isDirectory()) report.skipped.push({ path, reason: 'a folder inside a class folder (not searched)' });
      else if (!exts.some((x) => e.name.toLowerCase().endsWith(x))) report.skipped.push({ path, reason: `not ${exts.join('/')}` });
      else {
        files.push(path);
        labels.push(c);
        n++;
      }
    }
    if (n === 0) report.emptyClasses.push(name);
  }
  if (files.length === 0) throw new Error(`loadImageFolder: no ${exts.join('/')} files under ${root}/<class>/`);
  const warning = summarize(root, report);
  if (warning) (opts.onWarning ?? ((m: string) => console.warn(m)))(warning);
  let H: number;
  let W: number;
  const resize = opts.size !== undefined;
  if (opts.size !== undefined) {
    [H, W] = typeof opts.size === 'number' ? [opts.size, opts.size] : [opts.size[0], opts.size[1]];
    if (!(Number.isInteger(H) && H > 0 && Number.isInteger(W) && W > 0)) throw new RangeError(`loadImageFolder: bad size [${opts.size}]`);
  } else {
    const first = await decodeImageFile(files[0]!, opts.decode, opts.limits);
    H = first.height;
    W = first.width;
  }
  return new ImageFolderDataset(root, files, labels, classNames, [H, W, channels], resize, opts.decode, report, opts.limits ?? {});
}

export interface ImageFolderSplitsOptions extends ImageFolderOptions {
  /** Split folders under the root, the first giving the class list unless `classes` is given. Default ['train', 'test']. */
  splits?: readonly string[];
}

/**
 * Load `root/<split>/<class>/<image>` for several splits with ONE class list (the first split's folders, or
 * `classes`): a class missing from one split keeps every other label in place, and a split with a class the
 * list lacks is refused, naming it. Images of the later splits are resized to the first split's size unless
 * `size` is given.
 */
export async function loadImageFolderSplits(root: string, opts: ImageFolderSplitsOptions = {}): Promise<Record<string, ImageFolderDataset>> {
  const splits = opts.splits ?? ['train', 'test'];
  if (splits.length === 0) throw new Error('loadImageFolderSplits: no splits');
  const base = root.replace(/\/$/, '');
  const out: Record<string, ImageFolderDataset> = {};
  const first = await loadImageFolder(`${base}/${splits[0]}`, opts);
  out[splits[0]!] = first;
  for (const s of splits.slice(1)) {
    out[s] = await loadImageFolder(`${base}/${s}`, { ...opts, classes: first.classNames, size: opts.size ?? [first.imageShape[0], first.imageShape[1]] });
  }
  return out;
}
