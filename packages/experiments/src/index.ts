export {
  runExperiment,
  probeBatch,
  type ExperimentSpec,
  type ExperimentResult,
  type ExperimentIo,
  type EpochPoint,
} from './experiment.js';
export type { TrainSettings } from './settings.js';
export { fashionMnistTrunk, type FashionMnistTrunk } from './trunks.js';
export { lineChart, htmlPage, table, color, escapeHtml, type ChartOptions, type Series } from './report.js';
