/**
 * Fashion-MNIST (Zalando, MIT licence): 28×28 grey images in 10 classes, as IDX files (gzipped or not).
 *
 * Sources, in the order `source: 'auto'` tries them: a `dir` you give, `$SOFTBIAS_FASHION_MNIST_DIR`,
 * Debian's `dataset-fashion-mnist` package (/usr/share/datasets/fashion-mnist), then the subset embedded in
 * this package (300 training and 100 test images per class; see assets/README.md).
 */
import { ArrayDataset } from './dataset.js';
import { type ByteSource, dynamicImport, isNodeRuntime, pathExists } from './bytes.js';
import { readIdx } from './idx.js';

export const FASHION_MNIST_CLASSES = [
  'T-shirt/top',
  'Trouser',
  'Pullover',
  'Dress',
  'Coat',
  'Sandal',
  'Shirt',
  'Sneaker',
  'Bag',
  'Ankle boot',
] as const;

/** Mean and standard deviation of the 60 000 training pixels scaled to [0, 1]. */
export const FASHION_MNIST_MEAN = [0.2860406] as const;
export const FASHION_MNIST_STD = [0.3530242] as const;

/** Where Debian's `dataset-fashion-mnist` installs the files. */
export const DEBIAN_FASHION_MNIST_DIR = '/usr/share/datasets/fashion-mnist';

/** The embedded subset's folder (a file: URL in Node, an http(s) URL in a bundled browser build). */
export const EMBEDDED_FASHION_MNIST_URL: URL = new URL('../assets/fashion-mnist/', import.meta.url);

export interface FashionMnistOptions {
  split?: 'train' | 'test';
  /** 'auto' (default): the full set when found, else the embedded subset. 'full' fails if none is found. */
  source?: 'auto' | 'full' | 'embedded';
  /** A folder with `{train,t10k}-{images-idx3,labels-idx1}-ubyte[.gz]` (path or URL). */
  dir?: string | URL;
}

const PREFIX = { train: 'train', test: 't10k' } as const;

async function locate(dir: string | URL, file: string): Promise<ByteSource | undefined> {
  const base = dir instanceof URL ? dir.href : String(dir);
  const join = (name: string) => (dir instanceof URL || /^[a-z]+:/i.test(base) ? new URL(name, base.endsWith('/') ? base : `${base}/`) : `${base.replace(/\/$/, '')}/${name}`);
  for (const name of [`${file}.gz`, file]) {
    const p = join(name);
    if (p instanceof URL && p.protocol !== 'file:') return p; // remote: let the fetch report a miss
    const path = p instanceof URL ? decodeURIComponent(p.pathname) : p;
    if (await pathExists(path)) return p;
  }
  return undefined;
}

/**
 * The embedded subset's folder: beside this module (`../assets/fashion-mnist/`), or, when this code was bundled
 * elsewhere, inside the installed @softbias/data package (Node).
 */
async function embeddedDir(): Promise<string | URL> {
  if (!isNodeRuntime || (await locate(EMBEDDED_FASHION_MNIST_URL, 'train-images-idx3-ubyte'))) return EMBEDDED_FASHION_MNIST_URL;
  try {
    const { createRequire } = await dynamicImport('node:module');
    const pkg: string = createRequire(import.meta.url).resolve('@softbias/data/package.json');
    const dir = `${pkg.slice(0, pkg.lastIndexOf('/'))}/assets/fashion-mnist`;
    if (await locate(dir, 'train-images-idx3-ubyte')) return dir;
  } catch {
    /* not installed as a package: report the primary location below */
  }
  return EMBEDDED_FASHION_MNIST_URL;
}

/** The folder `source: 'auto' | 'full'` would use for the full set, or undefined when none is installed. */
export async function findFashionMnist(): Promise<string | undefined> {
  if (!isNodeRuntime) return undefined;
  const env = process.env['SOFTBIAS_FASHION_MNIST_DIR'];
  for (const dir of [env, DEBIAN_FASHION_MNIST_DIR]) {
    if (dir && (await locate(dir, 'train-images-idx3-ubyte'))) return dir;
  }
  return undefined;
}

/** Load Fashion-MNIST images ([28, 28, 1] uint8) and labels from IDX files. */
export async function loadFashionMnist(opts: FashionMnistOptions = {}): Promise<ArrayDataset> {
  const split = opts.split ?? 'train';
  if (split !== 'train' && split !== 'test') throw new Error(`Fashion-MNIST: split must be 'train' or 'test', got '${split}'`);
  const source = opts.source ?? 'auto';
  let dir: string | URL | undefined = opts.dir;
  let label: string;
  if (dir !== undefined) label = String(dir);
  else if (source === 'embedded') {
    dir = await embeddedDir();
    label = 'embedded';
  } else {
    dir = await findFashionMnist();
    if (dir === undefined) {
      if (source === 'full') {
        throw new Error(
          `Fashion-MNIST: the full set was not found (looked in $SOFTBIAS_FASHION_MNIST_DIR and ${DEBIAN_FASHION_MNIST_DIR}; ` +
            "Debian: apt-get install dataset-fashion-mnist), or pass { dir }. Use { source: 'embedded' } for the small subset.",
        );
      }
      dir = await embeddedDir();
      label = 'embedded';
    } else label = dir;
  }
  const p = PREFIX[split];
  const imagesFile = await locate(dir, `${p}-images-idx3-ubyte`);
  const labelsFile = await locate(dir, `${p}-labels-idx1-ubyte`);
  if (!imagesFile || !labelsFile) {
    throw new Error(
      `Fashion-MNIST: ${String(dir)} lacks ${!imagesFile ? `${p}-images-idx3-ubyte[.gz]` : `${p}-labels-idx1-ubyte[.gz]`}` +
        (label === 'embedded' ? ' (the embedded subset ships in @softbias/data/assets; a bundle must keep that folder reachable, or pass { dir })' : ''),
    );
  }
  const images = await readIdx(imagesFile);
  const labels = await readIdx(labelsFile);
  if (images.dtype !== 'uint8' || images.shape.length !== 3) {
    throw new Error(`Fashion-MNIST: ${String(imagesFile)} should hold uint8 [N, 28, 28], got ${images.dtype} [${images.shape}]`);
  }
  if (labels.dtype !== 'uint8' || labels.shape.length !== 1) {
    throw new Error(`Fashion-MNIST: ${String(labelsFile)} should hold uint8 [N], got ${labels.dtype} [${labels.shape}]`);
  }
  if (labels.shape[0] !== images.shape[0]) {
    throw new Error(`Fashion-MNIST: ${images.shape[0]} images but ${labels.shape[0]} labels`);
  }
  for (const l of labels.data) if (l > 9) throw new Error(`Fashion-MNIST: label ${l} is not one of the 10 classes`);
  return new ArrayDataset({
    images: images.data as Uint8Array,
    labels: labels.data,
    imageShape: [images.shape[1]!, images.shape[2]!, 1],
    classNames: [...FASHION_MNIST_CLASSES],
    source: `${label} (${split})`,
  });
}
