/** A summary of an ONNX ModelProto read back with the package's protobuf reader (tests, `softbias export`). */
import { decodeFields, fieldString, int64, packedInt64, type ProtoField } from './proto.js';

export interface OnnxSummary {
  irVersion: number;
  opset: number;
  producer: string;
  /** Node count per op type. */
  ops: Record<string, number>;
  inputs: { name: string; dims: (number | string)[] }[];
  outputs: { name: string; dims: (number | string)[] }[];
  initializers: number;
  /** Initializers stored in an external file, and the files' names. */
  externalInitializers: number;
  externalLocations: string[];
  metadata: Record<string, string>;
}

function sub(fields: ProtoField[], field: number): Uint8Array[] {
  return fields.filter((f) => f.field === field && f.bytes).map((f) => f.bytes!);
}

function valueInfo(b: Uint8Array): { name: string; dims: (number | string)[] } {
  const f = decodeFields(b);
  const dims: (number | string)[] = [];
  for (const type of sub(f, 2)) {
    for (const tensor of sub(decodeFields(type), 1)) {
      for (const shape of sub(decodeFields(tensor), 2)) {
        for (const dim of sub(decodeFields(shape), 1)) {
          const d = decodeFields(dim);
          const v = d.find((x) => x.field === 1);
          dims.push(v ? int64(v) : (fieldString(d, 2) ?? '?'));
        }
      }
    }
  }
  return { name: fieldString(f, 1) ?? '', dims };
}

export function inspectOnnx(bytes: Uint8Array): OnnxSummary {
  const model = decodeFields(bytes);
  const ir = model.find((f) => f.field === 1);
  const opsetMsg = sub(model, 8).map((b) => decodeFields(b));
  const opset = opsetMsg.find((o) => (fieldString(o, 1) ?? '') === '');
  const graph = decodeFields(sub(model, 7)[0] ?? new Uint8Array());
  const ops: Record<string, number> = {};
  for (const n of sub(graph, 1)) {
    const op = fieldString(decodeFields(n), 4) ?? '?';
    ops[op] = (ops[op] ?? 0) + 1;
  }
  let external = 0;
  const locations = new Set<string>();
  const inits = sub(graph, 5);
  for (const t of inits) {
    const f = decodeFields(t);
    const loc = f.find((x) => x.field === 14);
    if (loc && int64(loc) === 1) {
      external++;
      for (const e of sub(f, 13)) {
        const kv = decodeFields(e);
        if (fieldString(kv, 1) === 'location') locations.add(fieldString(kv, 2) ?? '');
      }
    }
  }
  const metadata: Record<string, string> = {};
  for (const e of sub(model, 14)) {
    const kv = decodeFields(e);
    metadata[fieldString(kv, 1) ?? ''] = fieldString(kv, 2) ?? '';
  }
  return {
    irVersion: ir ? int64(ir) : 0,
    opset: opset ? (packedInt64(opset, 2)[0] ?? 0) : 0,
    producer: fieldString(model, 2) ?? '',
    ops,
    inputs: sub(graph, 11).map(valueInfo),
    outputs: sub(graph, 12).map(valueInfo),
    initializers: inits.length,
    externalInitializers: external,
    externalLocations: [...locations],
    metadata,
  };
}
