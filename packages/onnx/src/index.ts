export {
  exportOnnx,
  exportOnnxParts,
  type ExportOnnxOptions,
  type OnnxWithExternalData,
  type ExportableModel,
  type ExportInfo,
} from './export.js';
export { writeOnnx, type WriteOnnxOptions, type WriteOnnxResult } from './node.js';
export {
  GraphBuilder,
  serializeModel,
  OnnxSizeError,
  DataType,
  MIN_OPSET,
  MAX_OPSET,
  irVersionFor,
  type Attr,
  type Dim,
  type Initializer,
  type SerializeOptions,
  type SerializedModel,
} from './graph.js';
export { Message, decodeFields, PROTOBUF_LIMIT, type ProtoField } from './proto.js';
export { inspectOnnx, type OnnxSummary } from './inspect.js';
