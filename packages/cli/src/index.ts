export { main } from './bin.js';
export { runDemo, demoSpecs, fashionMnistTrunk, demoReport, loadDemoData, DEMO_DEFAULTS, type DemoOptions, type DemoResult } from './demo.js';
export {
  runExperiment,
  probeBatch,
  type ExperimentSpec,
  type ExperimentResult,
  type ExperimentIo,
  type EpochPoint,
} from './experiment.js';
export { train, evalCmd, inspect, bench, loadData, fitOverrides, type TrainArgs, type TrainOutcome, type LoadedData } from './commands.js';
export { pretrain, type PretrainArgs, type PretrainHooks, type PretrainOutcome } from './pretrain.js';
export { exportCmd, parseExportArgs, EXPORT_USAGE, type ExportArgs } from './export.js';
export { lineChart, htmlPage, table, color, escapeHtml, type ChartOptions, type Series } from './report.js';
export { createAnyModel, loadAnyModel, familyOf, listAllModels, type AnyModel, type Family } from './models.js';
