/**
 * The study's plan: which runs, in which order, with which settings. Pure data (no tensors), so the plan can be
 * printed, tested and compared with what a resumed run finds on disk.
 *
 * ConViT's sample-efficiency protocol (d'Ascoli et al. 2021, §4.2): train on a fraction f of each class and scale
 * the epochs by 1/f, so every run sees about the same number of images. At f = 0.1 only: the GPSA ablations
 * (Table 3: no gate, no convolutional initialisation, neither, frozen GPSA), the token mixers of Han et al. (local
 * window attention, depth-wise convolution) and of Melas-Kyriazi (a feed-forward layer over the patches) in place
 * of GPSA, and ConvNeXt V2 micro pre-trained with FCMAE vs trained from scratch.
 */
import type { ConvitMixerSpec, ConvitOverrides } from '@softbias/models-convit';
import { fashionMnistTrunk } from '@softbias/experiments';

export type RunKind = 'convit' | 'fcmae-pretrain' | 'convnext';

export interface StudyRun {
  /** Stable id: file names under `<out>/runs/`, and the key a resumed study matches on. */
  id: string;
  /** Which table the run belongs to. */
  group: 'fractions' | 'ablations' | 'mixers' | 'convnext';
  label: string;
  kind: RunKind;
  /** Fraction of each class of the labelled training set (FCMAE pre-training: of the images, labels unused). */
  fraction: number;
  epochs: number;
  /** Registry name and overrides (convit); depths/dims (convnext, fcmae). */
  model: string;
  overrides: ConvitOverrides;
  depths?: [number, number, number, number];
  dims?: [number, number, number, number];
  /** convnext: start from this run's encoder (an FCMAE pre-training run id). */
  initFrom?: string;
  /** Square input size the images are resized to. */
  imgSize: number;
  evalEvery: number;
  warmupEpochs: number;
  /** Drop each epoch's incomplete last training batch. */
  dropLast: boolean;
}

export interface StudyOptions {
  /** Epochs at f = 1; a run at fraction f trains round(baseEpochs / f) epochs. */
  baseEpochs: number;
  fractions: readonly number[];
  /** The fraction at which the ablations, mixers and ConvNeXt V2 runs are made. */
  ablationFraction: number;
  /** Epochs of FCMAE pre-training (on every training image, labels unused). */
  pretrainEpochs: number;
  /** Evaluations per run (spread evenly, the last one at the end). */
  evaluations: number;
  embedDim: number;
  depth: number;
  numHeads: number;
  /** GPSA (or the replacing mixer) in blocks [0, localUpToLayer); plain self-attention above, with the class token. */
  localUpToLayer: number;
  /** ConViT input side: the 28×28 images are resized so that the patch grid (side / 4) can hold 4×4 windows. */
  imgSize: number;
  /** ConvNeXt V2 input side (a multiple of 32, FCMAE's patch). */
  convnextImgSize: number;
  groups: readonly StudyRun['group'][];
  /**
   * Drop each epoch's incomplete last training batch (timm's default). With it kept, f = 0.3 (900 images,
   * batch 64) ends every epoch on a 4-image batch, and that run trails both neighbours (see the README).
   */
  dropLast: boolean;
}

export const STUDY_DEFAULTS: StudyOptions = {
  baseEpochs: 4,
  fractions: [0.05, 0.1, 0.3, 0.5, 1],
  ablationFraction: 0.1,
  pretrainEpochs: 15,
  evaluations: 5,
  embedDim: 64,
  depth: 6,
  numHeads: 4,
  localUpToLayer: 4,
  imgSize: 32,
  convnextImgSize: 64,
  groups: ['fractions', 'ablations', 'mixers', 'convnext'],
  dropLast: true,
};

/** ConvNeXt V2 "micro": half of Atto's depth per stage, 24 channels in the first stage (Atto: [2,2,6,2], 40). */
export const CONVNEXT_MICRO = { depths: [1, 1, 3, 1] as [number, number, number, number], dims: [24, 48, 96, 192] as [number, number, number, number] };

export const epochsFor = (baseEpochs: number, fraction: number): number => Math.max(1, Math.round(baseEpochs / fraction));

const pct = (f: number) => `${Math.round(f * 100)}`;

export function studyPlan(o: StudyOptions = STUDY_DEFAULTS): StudyRun[] {
  if (!(o.baseEpochs >= 1) || !Number.isInteger(o.baseEpochs)) throw new RangeError(`baseEpochs must be a positive integer, got ${o.baseEpochs}`);
  for (const f of [...o.fractions, o.ablationFraction]) {
    if (!(f > 0 && f <= 1)) throw new RangeError(`fractions must be in (0, 1], got ${f}`);
  }
  if (o.imgSize % 4 !== 0 || (o.imgSize / 4) % 4 !== 0) {
    throw new RangeError(`imgSize must make a patch grid divisible into 4×4 windows (a multiple of 16), got ${o.imgSize}`);
  }
  if (o.convnextImgSize % 32 !== 0) throw new RangeError(`convnextImgSize must be a multiple of 32, got ${o.convnextImgSize}`);
  const trunk: ConvitOverrides = fashionMnistTrunk(o);
  const timing = (fraction: number, epochs = epochsFor(o.baseEpochs, fraction)) => ({
    fraction,
    epochs,
    evalEvery: Math.max(1, Math.round(epochs / o.evaluations)),
    warmupEpochs: Math.max(1, Math.round(epochs / 10)),
    imgSize: o.imgSize,
    dropLast: o.dropLast,
  });
  const local = o.localUpToLayer;
  // An array (not a function) keeps the plan JSON; `null` = the block's default mixer.
  const early = (spec: ConvitMixerSpec) => Array.from({ length: o.depth }, (_, i) => (i < local ? spec : undefined));
  const convit = (id: string, group: StudyRun['group'], label: string, fraction: number, mixers?: (ConvitMixerSpec | undefined)[]): StudyRun => ({
    id,
    group,
    label,
    kind: 'convit',
    model: 'convit_tiny',
    overrides: { ...trunk, localUpToLayer: local, ...(mixers ? { mixers } : {}) },
    ...timing(fraction),
  });
  const runs: StudyRun[] = [];
  const want = new Set(o.groups);
  if (want.has('fractions')) {
    for (const f of o.fractions) {
      runs.push(convit(`convit-f${pct(f)}`, 'fractions', 'ConViT', f));
      runs.push({
        id: `deit-f${pct(f)}`,
        group: 'fractions',
        label: 'DeiT twin',
        kind: 'convit',
        model: 'convit_tiny_deit',
        overrides: { ...trunk, localUpToLayer: 0 },
        ...timing(f),
      });
    }
  }
  const fa = o.ablationFraction;
  const a = pct(fa);
  if (want.has('ablations')) {
    runs.push(convit(`ablate-nogate-f${a}`, 'ablations', 'no gate (frozen at σ(1))', fa, early({ kind: 'gpsa', gate: 'frozen' })));
    runs.push(convit(`ablate-noconv-f${a}`, 'ablations', 'no conv. init', fa, early({ kind: 'gpsa', localInit: false })));
    runs.push(convit(`ablate-neither-f${a}`, 'ablations', 'no gate, no conv. init', fa, early({ kind: 'gpsa', gate: 'frozen', localInit: false })));
    runs.push(convit(`ablate-frozen-f${a}`, 'ablations', 'GPSA frozen at init', fa, early({ kind: 'gpsa', trainable: false })));
  }
  if (want.has('mixers')) {
    runs.push(convit(`mixer-window-f${a}`, 'mixers', 'window attention 4×4', fa, early({ kind: 'window', size: 4 })));
    runs.push(convit(`mixer-dwconv-f${a}`, 'mixers', 'depth-wise conv 3×3', fa, early({ kind: 'dwconv', dynamic: false, kernelSize: 3 })));
    runs.push(convit(`mixer-ffpatches-f${a}`, 'mixers', 'feed-forward over patches', fa, early({ kind: 'ff-patches' })));
  }
  if (want.has('convnext')) {
    const common = { group: 'convnext' as const, overrides: {}, ...CONVNEXT_MICRO, model: 'convnextv2_micro', imgSize: o.convnextImgSize };
    const epochs = epochsFor(o.baseEpochs, fa);
    const pre = { ...timing(1, o.pretrainEpochs), imgSize: o.convnextImgSize };
    runs.push({ ...common, ...pre, id: 'fcmae-pretrain', label: 'FCMAE pre-training (all images, no labels)', kind: 'fcmae-pretrain' });
    runs.push({ ...common, ...timing(fa, epochs), imgSize: o.convnextImgSize, id: `convnext-scratch-f${a}`, label: 'ConvNeXt V2 micro, from scratch', kind: 'convnext' });
    runs.push({
      ...common,
      ...timing(fa, epochs),
      imgSize: o.convnextImgSize,
      id: `convnext-fcmae-f${a}`,
      label: 'ConvNeXt V2 micro, FCMAE pre-trained',
      kind: 'convnext',
      initFrom: 'fcmae-pretrain',
    });
  }
  return runs;
}
