export {
  grn,
  grnMasked,
  grnRows,
  safeSqrt,
  GRN_EPS,
  type GrnOptions,
  type GrnMaskedOptions,
  type GrnRowsOptions,
  type GrnStats,
} from './grn.js';
export { Grn } from './module.js';
