export {
  Gpsa,
  type GpsaOptions,
  type GpsaAttentionMaps,
  type GateMode,
} from './gpsa.js';
export { relativeIndices, relativeDistances } from './relative.js';
