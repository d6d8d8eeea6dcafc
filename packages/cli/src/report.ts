/**
 * Deprecated: the report charts moved to `@softbias/experiments`. These re-exports keep old imports from
 * `@softbias/cli` working for a release.
 */
import * as experiments from '@softbias/experiments';

/** @deprecated Moved to `@softbias/experiments`: `import { lineChart } from '@softbias/experiments'`. */
export const lineChart: typeof experiments.lineChart = experiments.lineChart;
/** @deprecated Moved to `@softbias/experiments`. */
export const htmlPage: typeof experiments.htmlPage = experiments.htmlPage;
/** @deprecated Moved to `@softbias/experiments`. */
export const table: typeof experiments.table = experiments.table;
/** @deprecated Moved to `@softbias/experiments`. */
export const color: typeof experiments.color = experiments.color;
/** @deprecated Moved to `@softbias/experiments`. */
export const escapeHtml: typeof experiments.escapeHtml = experiments.escapeHtml;
/** @deprecated Moved to `@softbias/experiments`. */
export type ChartOptions = experiments.ChartOptions;
/** @deprecated Moved to `@softbias/experiments`. */
export type Series = experiments.Series;
