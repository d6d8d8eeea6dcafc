/** Duplicate keys in a safetensors header are an error, not JSON.parse's silent last-wins. */
import { describe, it, expect } from 'vitest';
import { parseSafetensors, serializeSafetensors, SafetensorsError, duplicateJsonKey } from '@softbias/tensor-ops';

/** A file from a raw header text and a data section. */
function file(header: string, data: Uint8Array): Uint8Array {
  const h = new TextEncoder().encode(header);
  const out = new Uint8Array(8 + h.length + data.length);
  new DataView(out.buffer).setBigUint64(0, BigInt(h.length), true);
  out.set(h, 8);
  out.set(data, 8 + h.length);
  return out;
}

const f32 = (...v: number[]) => new Uint8Array(new Float32Array(v).buffer);

describe('safetensors: duplicate header keys', () => {
  it('two entries under one tensor name are refused (JSON.parse would keep the second)', () => {
    const header = '{"w":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"w":{"dtype":"F32","shape":[1],"data_offsets":[4,8]},"x":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}';
    // Without the check this parses (w → the second entry; x covers the first 4 bytes) and w reads 2, not 1.
    expect(() => parseSafetensors(file(header, f32(1, 2)))).toThrow(SafetensorsError);
    expect(() => parseSafetensors(file(header, f32(1, 2)))).toThrow(/duplicate key 'w' in the header/);
  });

  it('keys equal after unescaping, duplicate metadata keys and duplicate entry fields are refused', () => {
    expect(() => parseSafetensors(file('{"w":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"\\u0077":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}', f32(1)))).toThrow(/duplicate key 'w'/);
    expect(() => parseSafetensors(file('{"__metadata__":{"format":"pt","format":"np"},"w":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}', f32(1)))).toThrow(/duplicate key 'format' in '__metadata__'/);
    expect(() => parseSafetensors(file('{"w":{"dtype":"F16","shape":[1],"dtype":"F32","data_offsets":[0,4]}}', f32(1)))).toThrow(/duplicate key 'dtype' in 'w'/);
  });

  it('the same key in different objects, in strings, and escaped quotes are fine', () => {
    expect(duplicateJsonKey('{"a":{"x":1},"b":{"x":[{"x":2},{"x":3}]},"c":"\\"a\\":"}')).toBeUndefined();
    expect(duplicateJsonKey('{"a":"x","b":["a","a"],"a\\"":1}')).toBeUndefined();
    expect(duplicateJsonKey('{"a":1,"b":{"c":[1,{"d":1,"d":2}]}}')).toBe("'d' in 'c'");
    const ok = serializeSafetensors({ a: { data: new Float32Array(2), shape: [2] }, b: { data: new Float32Array(1), shape: [1] } }, { metadata: { a: 'x' } });
    expect(parseSafetensors(ok).names()).toEqual(['a', 'b']);
  });
});
