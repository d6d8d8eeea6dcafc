export { type ByteSource, isGzip, maybeGunzip, readSource } from './bytes.js';
export { type IdxArray, type IdxDtype, parseIdx, readIdx, encodeIdx } from './idx.js';
export {
  type ImageDataset,
  type ArrayDatasetOptions,
  ArrayDataset,
  SubsetDataset,
  subset,
  materialize,
  classCounts,
} from './dataset.js';
export { type SubsampleOptions, subsamplePerClass } from './subsample.js';
export {
  type FashionMnistOptions,
  FASHION_MNIST_CLASSES,
  FASHION_MNIST_MEAN,
  FASHION_MNIST_STD,
  DEBIAN_FASHION_MNIST_DIR,
  EMBEDDED_FASHION_MNIST_URL,
  findFashionMnist,
  loadFashionMnist,
} from './fashion-mnist.js';
export { type Cifar10Options, CIFAR10_CLASSES, CIFAR10_MEAN, CIFAR10_STD, parseCifar10Batch, loadCifar10 } from './cifar.js';
export {
  type DecodedImage,
  type ImageHeader,
  type ImageLimits,
  decodeImage,
  decodePng,
  decodeJpeg,
  readImageHeader,
  checkDecodedSize,
  isPng,
  isJpeg,
  toChannels,
  crc32,
  MAX_IMAGE_PIXELS,
  MAX_DECODED_BYTES,
  MAX_PNG_PIXELS,
} from './image.js';
export {
  type ImageDecoder,
  type ImageFolderOptions,
  type ImageFolderReport,
  type ImageFolderSplitsOptions,
  ImageFolderDataset,
  loadImageFolder,
  loadImageFolderSplits,
  decodeImageFile,
} from './image-folder.js';
export {
  type AugmentOptions,
  type CropSpec,
  type CropBox,
  type Normalization,
  randomResizedCropBox,
  trainingAugment,
  resizeBilinear,
  renderSample,
  normalizationCoefficients,
} from './augment.js';
export { type DataLoaderOptions, type LoaderState, type Batch, type HostBatch, DataLoader } from './loader.js';
export { mixSeed } from './seed.js';
