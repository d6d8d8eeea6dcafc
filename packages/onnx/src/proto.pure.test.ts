/** The hand-written protobuf writer/reader and the ONNX message encoding (no tensors, no backend). */
import { describe, expect, it } from 'vitest';
import * as ort from 'onnxruntime-node';
import { Message, decodeFields, int64, packedInt64 } from './proto.js';
import { GraphBuilder, OnnxSizeError, irVersionFor, serializeModel } from './graph.js';
import { inspectOnnx } from './inspect.js';

describe('protobuf wire format', () => {
  it('varints: small, multi-byte, 2^53 − 1 and negative int64 (10 bytes, two’s complement)', () => {
    const hex = (m: Message) => Buffer.from(m.concat()).toString('hex');
    expect(hex(new Message().varint(1, 0))).toBe('0800');
    expect(hex(new Message().varint(1, 150))).toBe('089601'); // the protobuf docs' example
    expect(hex(new Message().varint(2, 300))).toBe('10ac02');
    expect(hex(new Message().varint(1, -1))).toBe('08ffffffffffffffffff01');
    const big = decodeFields(new Message().varint(3, Number.MAX_SAFE_INTEGER).varint(4, -2).concat());
    expect(int64(big[0]!)).toBe(Number.MAX_SAFE_INTEGER);
    expect(int64(big[1]!)).toBe(-2);
  });

  it('strings, floats, nested messages and packed int64 round-trip through the reader', () => {
    const inner = new Message().string(1, 'héllo').float(2, 1.5);
    const m = new Message().message(7, inner).packedVarints(8, [1, 300, -1, 0]).bytes(9, new Uint8Array([1, 2, 3]));
    const f = decodeFields(m.concat());
    expect(f.map((x) => [x.field, x.wire])).toEqual([[7, 2], [8, 2], [9, 2]]);
    const g = decodeFields(f[0]!.bytes!);
    expect(new TextDecoder().decode(g[0]!.bytes)).toBe('héllo');
    expect(new DataView(g[1]!.bytes!.buffer, g[1]!.bytes!.byteOffset).getFloat32(0, true)).toBe(1.5);
    expect(packedInt64(f, 8)).toEqual([1, 300, -1, 0]);
    expect([...f[2]!.bytes!]).toEqual([1, 2, 3]);
    expect(m.size).toBe(m.concat().byteLength);
  });

  it('the reader refuses truncated input', () => {
    expect(() => decodeFields(new Uint8Array([0x0a, 0x05, 1]))).toThrow(/overruns/);
    expect(() => decodeFields(new Uint8Array([0x08, 0x80]))).toThrow(/truncated/);
  });
});

describe('ONNX messages', () => {
  function tiny(opset = 17): GraphBuilder {
    const g = new GraphBuilder(opset);
    const x = g.input('x', ['batch', 3]);
    const w = g.weight('w', Float32Array.from({ length: 3 * 300 }, (_, i) => (i % 7) - 3), [3, 300]);
    const y = g.reduceMean(g.gelu(g.matmul(x, w)), [1], false);
    g.output(y, 'y', ['batch']);
    return g;
  }

  it('a hand-built graph loads in onnxruntime-node (its CPU binary, installed without its CUDA-download script) and computes', async () => {
    expect(ort.listSupportedBackends().map((b) => b.name)).toContain('cpu');
    const s = serializeModel(tiny());
    expect(s.external).toBeNull();
    const sess = await ort.InferenceSession.create(s.model);
    const out = await sess.run({ x: new ort.Tensor('float32', Float32Array.from([1, 0, 0, 0, 0, 0]), [2, 3]) });
    const want = (() => {
      let acc = 0;
      for (let j = 0; j < 300; j++) {
        const v = (j % 7) - 3;
        acc += 0.5 * v * (1 + erf(v / Math.SQRT2));
      }
      return acc / 300;
    })();
    expect(out.y!.dims).toEqual([2]);
    expect((out.y!.data as Float32Array)[0]).toBeCloseTo(want, 5);
    expect((out.y!.data as Float32Array)[1]).toBe(0);
    await sess.release();
  });

  it('inspectOnnx reads back opset, IR version, inputs, outputs, ops and metadata', () => {
    for (const opset of [17, 18, 21]) {
      const s = inspectOnnx(serializeModel(tiny(opset), { metadata: { a: 'b' } }).model);
      expect(s).toMatchObject({ opset, irVersion: irVersionFor(opset), producer: 'softbias', metadata: { a: 'b' }, initializers: opset >= 18 ? 5 : 4 }); // ReduceMean's axes: an input from 18
      expect(s.inputs).toEqual([{ name: 'x', dims: ['batch', 3] }]);
      expect(s.outputs).toEqual([{ name: 'y', dims: ['batch'] }]);
      expect(s.ops).toMatchObject({ MatMul: 1, Erf: 1, ReduceMean: 1 });
    }
  });

  it('external data: large initializers at aligned offsets of one file, small ones inline', () => {
    const s = serializeModel(tiny(), { external: { location: 'tiny.onnx.data', threshold: 1024, align: 4096 } });
    expect(s.external!.location).toBe('tiny.onnx.data');
    expect(s.external!.size).toBe(3 * 300 * 4); // the one large weight, at offset 0
    const info = inspectOnnx(s.model);
    expect(info.externalInitializers).toBe(1);
    expect(info.externalLocations).toEqual(['tiny.onnx.data']);
    const two = new GraphBuilder(17);
    const a = two.weight('a', new Float32Array(300), [300]);
    const b = two.weight('b', new Float32Array(300), [300]);
    two.output(two.add(a, b), 'y', [300]);
    const e = serializeModel(two, { external: { location: 'd', align: 4096 } }).external!;
    expect(e.chunks.map((c) => c.byteLength)).toEqual([1200, 4096 - 1200, 1200]);
    expect(e.size).toBe(4096 + 1200);
  });

  it('a model over the protobuf limit throws OnnxSizeError (no broken file); with external data it does not', () => {
    expect(() => serializeModel(tiny(), { limit: 1000 })).toThrow(OnnxSizeError);
    expect(() => serializeModel(tiny(), { limit: 1000 })).toThrow(/externalData: true/);
    expect(() => serializeModel(tiny(), { limit: 1000, external: { location: 'x.data' } })).not.toThrow();
  });

  it('opsets outside 17…22 are refused', () => {
    expect(() => new GraphBuilder(16)).toThrow(/opset/);
    expect(() => new GraphBuilder(23)).toThrow(/opset/);
  });
});

/** erf (Abramowitz–Stegun 7.1.26 is too coarse: a series/continued fraction in float64). */
function erf(x: number): number {
  // Taylor series, enough terms for |x| ≤ 3.
  let sum = 0;
  let term = x;
  for (let n = 0; n < 80; n++) {
    sum += term / (2 * n + 1);
    term *= (-x * x) / (n + 1);
  }
  return (2 / Math.sqrt(Math.PI)) * sum;
}
