export { topKCorrect, accuracy, predictions, AccuracyMeter, ConfusionMatrix } from './accuracy.js';
export { type ParameterCount, countParameters, formatCount } from './params.js';
export {
  type MacOp,
  type MacReport,
  type CountedMacs,
  type ConvitMacConfig,
  type ConvnextV2MacConfig,
  type ProfiledMacs,
  linearMacs,
  conv2dMacs,
  depthwiseMacs,
  attentionMacs,
  opMacs,
  countMacs,
  groupMacs,
  convitMacOps,
  convnextv2MacOps,
  convitMacs,
  convnextv2Macs,
  kernelMacs,
  profileMacs,
} from './macs.js';
export { featureCollapse, FeatureCollapseMeter } from './collapse.js';
export {
  type LayerValues,
  type LayerStats,
  type LayerSummary,
  type SummarizeOptions,
  summarizeLayers,
  LayerMeter,
  summarizeOverDataset,
} from './summary.js';
export {
  type TimingOptions,
  type TimingResult,
  type ThroughputResult,
  median,
  percentile,
  measureLatency,
  measureThroughput,
} from './timing.js';
