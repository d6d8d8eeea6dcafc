export {
  setupBackend,
  probeWebGpu,
  getGpu,
  isNode,
  BackendUnavailableError,
  type BackendName,
  type BackendRequest,
  type BackendInfo,
  type BackendAttempt,
  type AdapterDescription,
  type SetupBackendOptions,
} from './backend.js';
export { gradientsRegistered, REQUIRED_GRADIENTS } from './gradients.js';
export { useLeanGradients, leanGradientsActive } from './lean-gradients.js';
export { gradCheckpoint } from './grad-checkpoint.js';
export {
  Module,
  ModuleList,
  Parameter,
  StateDictError,
  describeStateDictProblems,
  entryDefect,
  type ParameterOptions,
  type LoadStateDictOptions,
  type LoadStateDictResult,
  type StateDict,
  type StateDictEntry,
} from './module.js';
export { type ParamLayout, toTorch, fromTorch, torchShape, tensorFromTorchData } from './layout.js';
export { Rng } from './rng.js';
export { crc32 } from './crc32.js';
export { assertImageBatch, InputError, type AssertImageBatchOptions } from './input.js';
export {
  fetchBytes,
  fetchHead,
  expectSafetensors,
  FetchError,
  type FetchBytesOptions,
  type FetchHeadOptions,
  type FetchErrorKind,
  type ContentCheck,
} from './net.js';
export { truncNormal, normal, uniform, zeros, ones, constant } from './init.js';
export {
  parseSafetensors,
  serializeSafetensors,
  readSafetensors,
  readBytes,
  duplicateJsonKey,
  writeFileAtomic,
  SafetensorsFile,
  SafetensorsError,
  DTYPE_SIZES,
  MAX_HEADER_BYTES,
  type SafetensorsDtype,
  type SafetensorsEntry,
  type SafetensorsTensor,
  type TensorData,
  type WriteTensor,
  type SerializeOptions,
  type WeightsSource,
  type ReadWeightsOptions,
} from './safetensors.js';
export {
  stateDictFromSafetensors,
  loadSafetensorsInto,
  saveSafetensorsBytes,
  saveSafetensorsFile,
  tensorsToHost,
  type SaveOptions,
} from './weights.js';
export { Linear, linear, linearGelu, linearInit, type LinearOptions } from './layers/linear.js';
export { LayerNorm, layerNorm } from './layers/norm.js';
export { gelu } from './layers/activation.js';
export { Dropout, DropPath } from './layers/dropout.js';
export { Mlp, type MlpOptions } from './layers/mlp.js';
export { PatchEmbed, PatchProj, nonOverlappingConv2d, type PatchEmbedOptions } from './layers/patch.js';
export { registerSoftbiasWasmKernels } from './kernels/register.js';
export { kernelThreads, setKernelThreads } from './kernels/runtime.js';
export { sumOfSquaresOverPositions, gatherRowsFused } from './kernels/broadcast.js';
export { hasSimdBatchMatMul, setFusedLinear } from './kernels/wasm-batch-matmul.js';
export { hasRowDepthwiseKernels, ROW_DEPTHWISE_KERNEL, ROW_DEPTHWISE_FILTER_GRAD_KERNEL } from './kernels/depthwise.js';
export { fusedAttentionForward, fusedAttentionActive, setFusedAttention, ATTENTION_KERNEL } from './kernels/attention.js';
