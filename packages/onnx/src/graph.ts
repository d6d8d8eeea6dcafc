/**
 * An ONNX graph builder and the serialisation of the ONNX messages it needs (ModelProto, GraphProto, NodeProto,
 * AttributeProto, TensorProto with inline or external data, ValueInfoProto): field numbers as in onnx/onnx.proto3.
 */
import { Message, PROTOBUF_LIMIT } from './proto.js';

/** ONNX TensorProto.DataType values used here. */
export const DataType = { FLOAT: 1, INT64: 7 } as const;
export type DataTypeValue = (typeof DataType)[keyof typeof DataType];

/** Opsets this exporter writes (LayerNormalization needs 17). */
export const MIN_OPSET = 17;
export const MAX_OPSET = 22;

/** IR version that goes with an opset (onnx/helper.py VERSION_TABLE). */
export function irVersionFor(opset: number): number {
  if (opset <= 18) return 8;
  if (opset <= 20) return 9;
  return 10;
}

/** A dimension: a number, or a symbolic name (`batch`). */
export type Dim = number | string;

/** Node attributes, typed explicitly (ONNX distinguishes INT from FLOAT). */
export type Attr = { i: number } | { f: number } | { s: string } | { ints: readonly number[] } | { floats: readonly number[] };

export interface Initializer {
  name: string;
  dims: number[];
  dataType: DataTypeValue;
  /** Little-endian payload. */
  data: Uint8Array;
}

interface ValueInfo {
  name: string;
  elemType: DataTypeValue;
  dims: readonly Dim[];
}

interface NodeSpec {
  op: string;
  inputs: string[];
  outputs: string[];
  name: string;
  attrs: Record<string, Attr>;
}

const littleEndian = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;

/** Float32 data as little-endian bytes (a view when the host is little-endian: no copy). */
export function float32Bytes(data: Float32Array): Uint8Array {
  if (littleEndian) return new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
  const out = new Uint8Array(data.length * 4);
  const dv = new DataView(out.buffer);
  data.forEach((v, i) => {
    dv.setFloat32(4 * i, v, true);
  });
  return out;
}

function int64Bytes(values: readonly number[]): Uint8Array {
  const out = new Uint8Array(values.length * 8);
  const dv = new DataView(out.buffer);
  values.forEach((v, i) => {
    dv.setBigInt64(8 * i, BigInt(v), true);
  });
  return out;
}

/** The ONNX graph of one model, built op by op. Names are unique; small constants are shared. */
export class GraphBuilder {
  readonly nodes: NodeSpec[] = [];
  readonly initializers: Initializer[] = [];
  readonly inputs: ValueInfo[] = [];
  readonly outputs: ValueInfo[] = [];
  private readonly used = new Set<string>();
  private readonly constCache = new Map<string, string>();
  private counter = 0;

  constructor(readonly opset: number) {
    if (!Number.isInteger(opset) || opset < MIN_OPSET || opset > MAX_OPSET) {
      throw new RangeError(`ONNX export: opset must be an integer from ${MIN_OPSET} to ${MAX_OPSET}, got ${opset}`);
    }
  }

  /** A fresh name based on `hint` (the hint itself when unused). */
  unique(hint: string): string {
    let name = hint;
    while (this.used.has(name)) name = `${hint}_${++this.counter}`;
    this.used.add(name);
    return name;
  }

  input(name: string, dims: readonly Dim[], elemType: DataTypeValue = DataType.FLOAT): string {
    const n = this.unique(name);
    if (n !== name) throw new Error(`ONNX export: input name '${name}' is already used`);
    this.inputs.push({ name, elemType, dims });
    return name;
  }

  /** Declare `value` as a graph output named `name` (an Identity when the names differ). */
  output(value: string, name: string, dims: readonly Dim[], elemType: DataTypeValue = DataType.FLOAT): void {
    if (value !== name) {
      if (this.used.has(name)) throw new Error(`ONNX export: output name '${name}' is already used`);
      this.used.add(name);
      this.nodes.push({ op: 'Identity', inputs: [value], outputs: [name], name: `${name}_identity`, attrs: {} });
    }
    this.outputs.push({ name, elemType, dims });
  }

  /** A float32 initializer (a model weight) named `name` (made unique). */
  weight(name: string, data: Float32Array, dims: readonly number[]): string {
    const size = dims.reduce((a, b) => a * b, 1);
    if (size !== data.length) throw new Error(`ONNX export: initializer ${name} has ${data.length} values for dims [${dims}]`);
    const n = this.unique(name);
    this.initializers.push({ name: n, dims: [...dims], dataType: DataType.FLOAT, data: float32Bytes(data) });
    return n;
  }

  /** A shared float32 constant (scalars and small vectors). */
  constF(values: readonly number[], dims: readonly number[] = values.length === 1 ? [] : [values.length]): string {
    const f = Float32Array.from(values);
    const key = `f:${dims.join('x')}:${Array.from(f).join(',')}`;
    let n = this.constCache.get(key);
    if (!n) {
      n = this.weight(`const_${values.length === 1 ? String(f[0]).replace(/[^0-9a-z.e-]/gi, '_') : `f${this.constCache.size}`}`, f, dims);
      this.constCache.set(key, n);
    }
    return n;
  }

  /** A shared int64 constant (shapes, axes, indices); `dims` [] makes a scalar. */
  constI64(values: readonly number[], dims: readonly number[] = [values.length]): string {
    const key = `i:${dims.join('x')}:${values.join(',')}`;
    let n = this.constCache.get(key);
    if (!n) {
      n = this.unique(`const_i64_${this.constCache.size}`);
      this.initializers.push({ name: n, dims: [...dims], dataType: DataType.INT64, data: int64Bytes(values) });
      this.constCache.set(key, n);
    }
    return n;
  }

  /** Add a node; returns its output names. */
  node(op: string, inputs: string[], attrs: Record<string, Attr> = {}, opts: { outputs?: number; name?: string } = {}): string[] {
    const base = this.unique(opts.name ?? `${op}_${this.nodes.length}`);
    const outputs = Array.from({ length: opts.outputs ?? 1 }, (_, i) => (i === 0 ? base : this.unique(`${base}_out${i}`)));
    this.nodes.push({ op, inputs, outputs, name: base, attrs });
    return outputs;
  }

  /** A one-output node. */
  op(op: string, inputs: string[], attrs: Record<string, Attr> = {}, name?: string): string {
    return this.node(op, inputs, attrs, name ? { name } : {})[0]!;
  }

  // ------------------------------------------------------------------------------------------------ helpers

  add(a: string, b: string): string {
    return this.op('Add', [a, b]);
  }
  sub(a: string, b: string): string {
    return this.op('Sub', [a, b]);
  }
  mul(a: string, b: string): string {
    return this.op('Mul', [a, b]);
  }
  div(a: string, b: string): string {
    return this.op('Div', [a, b]);
  }
  matmul(a: string, b: string): string {
    return this.op('MatMul', [a, b]);
  }
  reshape(x: string, shape: readonly number[]): string {
    return this.op('Reshape', [x, this.constI64(shape)]);
  }
  transpose(x: string, perm: readonly number[]): string {
    return this.op('Transpose', [x], { perm: { ints: perm } });
  }
  softmax(x: string, axis = -1): string {
    return this.op('Softmax', [x], { axis: { i: axis } });
  }
  /** ReduceSum (axes as an input since opset 13). */
  reduceSum(x: string, axes: readonly number[], keepdims: boolean): string {
    return this.op('ReduceSum', [x, this.constI64(axes)], { keepdims: { i: keepdims ? 1 : 0 } });
  }
  /** ReduceMean (axes an attribute up to opset 17, an input from 18). */
  reduceMean(x: string, axes: readonly number[], keepdims: boolean): string {
    if (this.opset >= 18) return this.op('ReduceMean', [x, this.constI64(axes)], { keepdims: { i: keepdims ? 1 : 0 } });
    return this.op('ReduceMean', [x], { axes: { ints: axes }, keepdims: { i: keepdims ? 1 : 0 } });
  }
  layerNorm(x: string, scale: string, bias: string, eps: number): string {
    return this.op('LayerNormalization', [x, scale, bias], { axis: { i: -1 }, epsilon: { f: eps } });
  }
  /** x[..., starts:ends] along `axes`. */
  slice(x: string, starts: readonly number[], ends: readonly number[], axes: readonly number[]): string {
    return this.op('Slice', [x, this.constI64(starts), this.constI64(ends), this.constI64(axes)]);
  }
  concat(xs: string[], axis: number): string {
    return this.op('Concat', xs, { axis: { i: axis } });
  }
  /** `x @ w (+ b)`: w [in, out] (the tfjs layout of a Linear weight). */
  linear(x: string, w: string, b: string | null): string {
    const y = this.matmul(x, w);
    return b ? this.add(y, b) : y;
  }
  /** Exact GELU as softbias computes it: (x·0.5)·(erf(x·√½) + 1). */
  gelu(x: string): string {
    const e = this.op('Erf', [this.mul(x, this.constF([Math.SQRT1_2]))]);
    return this.mul(this.mul(x, this.constF([0.5])), this.add(e, this.constF([1])));
  }

  // ------------------------------------------------------------------------------------------------ encode

  /** Bytes of every initializer. */
  weightBytes(): number {
    return this.initializers.reduce((a, t) => a + t.data.byteLength, 0);
  }
}

export interface SerializeOptions {
  producerVersion?: string;
  graphName?: string;
  docString?: string;
  /** `metadata_props` of the model. */
  metadata?: Record<string, string>;
  /**
   * Store initializers of at least `threshold` bytes (default 1024) in one external file named `location`,
   * each at an offset aligned to `align` bytes (default 4096).
   */
  external?: { location: string; threshold?: number; align?: number };
  /** The size a ModelProto may reach (default protobuf's, 2 GiB − 1; smaller in tests). */
  limit?: number;
}

export interface SerializedModel {
  /** The ModelProto. */
  model: Uint8Array;
  /** With `external`: the external data file's chunks, in order (zero padding included), and its size. */
  external: { location: string; chunks: Uint8Array[]; size: number } | null;
}

/** Raised when a model would exceed protobuf's 2 GiB limit without external data. */
export class OnnxSizeError extends Error {
  override name = 'OnnxSizeError';
}

function tensorMessage(t: Initializer, external?: { location: string; offset: number }): Message {
  const m = new Message();
  if (t.dims.length) m.packedVarints(1, t.dims);
  m.varint(2, t.dataType);
  m.string(8, t.name);
  if (external) {
    const entry = (k: string, v: string) => new Message().string(1, k).string(2, v);
    m.message(13, entry('location', external.location));
    m.message(13, entry('offset', String(external.offset)));
    m.message(13, entry('length', String(t.data.byteLength)));
    m.varint(14, 1); // DataLocation.EXTERNAL
  } else {
    m.bytes(9, t.data); // raw_data
  }
  return m;
}

function valueInfoMessage(v: ValueInfo): Message {
  const shape = new Message();
  for (const d of v.dims) {
    const dim = new Message();
    if (typeof d === 'number') dim.varint(1, d);
    else dim.string(2, d);
    shape.message(1, dim);
  }
  const tensorType = new Message().varint(1, v.elemType).message(2, shape);
  const type = new Message().message(1, tensorType);
  return new Message().string(1, v.name).message(2, type);
}

function attributeMessage(name: string, a: Attr): Message {
  const m = new Message().string(1, name);
  if ('i' in a) m.varint(3, a.i).varint(20, 2);
  else if ('f' in a) m.float(2, a.f).varint(20, 1);
  else if ('s' in a) m.string(4, a.s).varint(20, 3);
  else if ('ints' in a) m.packedVarints(8, a.ints).varint(20, 7);
  else m.packedFloats(7, [...a.floats]).varint(20, 6);
  return m;
}

function nodeMessage(n: NodeSpec): Message {
  const m = new Message();
  for (const i of n.inputs) m.string(1, i);
  for (const o of n.outputs) m.string(2, o);
  m.string(3, n.name);
  m.string(4, n.op);
  for (const [k, a] of Object.entries(n.attrs)) m.message(5, attributeMessage(k, a));
  return m;
}

/** Encode a built graph as an ONNX ModelProto (inline weights, or external data). */
export function serializeModel(g: GraphBuilder, opts: SerializeOptions = {}): SerializedModel {
  const graph = new Message();
  for (const n of g.nodes) graph.message(1, nodeMessage(n));
  graph.string(2, opts.graphName ?? 'softbias');
  let external: SerializedModel['external'] = null;
  if (opts.external) {
    const threshold = opts.external.threshold ?? 1024;
    const align = opts.external.align ?? 4096;
    const chunks: Uint8Array[] = [];
    let offset = 0;
    for (const t of g.initializers) {
      if (t.data.byteLength < threshold) {
        graph.message(5, tensorMessage(t));
        continue;
      }
      const pad = (align - (offset % align)) % align;
      if (pad) chunks.push(new Uint8Array(pad));
      offset += pad;
      graph.message(5, tensorMessage(t, { location: opts.external.location, offset }));
      chunks.push(t.data);
      offset += t.data.byteLength;
    }
    external = { location: opts.external.location, chunks, size: offset };
  } else {
    for (const t of g.initializers) graph.message(5, tensorMessage(t));
  }
  if (opts.docString) graph.string(10, opts.docString);
  for (const v of g.inputs) graph.message(11, valueInfoMessage(v));
  for (const v of g.outputs) graph.message(12, valueInfoMessage(v));

  const model = new Message();
  model.varint(1, irVersionFor(g.opset));
  model.string(2, 'softbias');
  model.string(3, opts.producerVersion ?? '0.1.0');
  model.varint(5, 1);
  model.message(7, graph);
  model.message(8, new Message().string(1, '').varint(2, g.opset));
  for (const [k, v] of Object.entries(opts.metadata ?? {})) model.message(14, new Message().string(1, k).string(2, v));
  if (model.size > (opts.limit ?? PROTOBUF_LIMIT)) {
    const gib = (model.size / 2 ** 30).toFixed(2);
    throw new OnnxSizeError(
      `ONNX export: the model is ${gib} GiB, over protobuf's 2 GiB limit for one file: export it with { externalData: true } ` +
        '(the graph plus a weights file; CLI: softbias export --external-data)',
    );
  }
  return { model: model.concat(), external };
}
