/** Weights stored as F16 / BF16: written by serializeSafetensors / writeWeights, read back as float32 within half-precision rounding. */
import { describe, it, expect } from 'vitest';
import { parseSafetensors, serializeSafetensors } from './safetensors.js';
import { WeightsError, readWeights, storedDtype } from './models/weights.js';

/** Deterministic values over many magnitudes (both signs), plus edge cases. */
function values(): Float32Array {
  const out: number[] = [0, -0, 1, -1, 0.1, 1 / 3, 65504, -65504, 6.1e-5, 5.96e-8, 1e-3, 123.456];
  let s = 12345;
  for (let i = 0; i < 4000; i++) {
    s = (s * 1103515245 + 12345) % 2 ** 31;
    const u = s / 2 ** 31;
    out.push((u - 0.5) * 2 * 10 ** (((i % 9) - 4) as number));
  }
  return new Float32Array(out);
}

describe('half-precision weights', () => {
  const data = values();
  const shape = [data.length];

  it('F16: half the bytes; each value comes back within half-precision rounding (2^-11 relative, 2^-25 absolute near 0)', () => {
    const f32 = serializeSafetensors([['w', { data, shape }]]);
    const f16 = serializeSafetensors([['w', { data, shape }]], { dtype: 'F16' });
    const file = parseSafetensors(f16);
    expect(file.info('w').dtype).toBe('F16');
    expect(f16.length).toBeLessThan(f32.length * 0.51 + 200);
    const back = file.getFloat32('w').data;
    let worst = 0;
    for (let i = 0; i < data.length; i++) {
      const err = Math.abs(back[i]! - data[i]!);
      const bound = Math.max(Math.abs(data[i]!) * 2 ** -11, 2 ** -25);
      worst = Math.max(worst, err / bound);
      expect(err, `value ${data[i]}`).toBeLessThanOrEqual(bound);
    }
    expect(worst).toBeGreaterThan(0.5); // it really was rounded (a lossless path would pass vacuously)
    expect(Object.is(back[1], -0)).toBe(true);
  });

  it('BF16: half the bytes; float32 range kept; within 2^-8 relative (round to nearest even)', () => {
    const big = new Float32Array([...data, 3e38, -3e38, 1e-30, Number.NaN, Number.POSITIVE_INFINITY]);
    const bytes = serializeSafetensors([['w', { data: big, shape: [big.length] }]], { dtype: 'BF16' });
    const file = parseSafetensors(bytes);
    expect(file.info('w').dtype).toBe('BF16');
    const back = file.getFloat32('w').data;
    for (let i = 0; i < data.length + 3; i++) {
      expect(Math.abs(back[i]! - big[i]!), `value ${big[i]}`).toBeLessThanOrEqual(Math.abs(big[i]!) * 2 ** -8);
    }
    expect(Number.isNaN(back[big.length - 2]!)).toBe(true);
    expect(back[big.length - 1]).toBe(Number.POSITIVE_INFINITY);
    // Round to nearest, ties to even: 1 + 2^-8 is a tie between 1 and 1 + 2^-7 → 1; 1 + 3·2^-8 → 1 + 2^-6.
    const ties = parseSafetensors(serializeSafetensors([['t', { data: new Float32Array([1 + 2 ** -8, 1 + 3 * 2 ** -8, 1 + 2 ** -8 + 2 ** -20]), shape: [3] }]], { dtype: 'BF16' }));
    expect(Array.from(ties.getFloat32('t').data)).toEqual([1, 1 + 2 ** -6, 1 + 2 ** -7]);
  });

  it("writeWeights' dtype names ('float16', 'bfloat16', 'float32', F16 …) and a refusal of others", async () => {
    expect(storedDtype('float16')).toBe('F16');
    expect(storedDtype('bfloat16')).toBe('BF16');
    expect(storedDtype('float32')).toBe('F32');
    expect(storedDtype('BF16')).toBe('BF16');
    expect(() => storedDtype('int8' as never)).toThrow(WeightsError);
    expect(() => storedDtype('int8' as never)).toThrow(/'float32', 'float16' or 'bfloat16'/);
    expect(() => serializeSafetensors([['w', { data, shape }]], { dtype: 'I8' as never })).toThrow(/F32, F16 or BF16/);
    const w = await readWeights(serializeSafetensors([['w', { data, shape }]], { dtype: 'BF16' }));
    expect(w.dtype('w')).toBe('BF16');
    const sd = w.stateDict();
    expect((sd.get('w') as { data: Float32Array }).data).toBeInstanceOf(Float32Array);
  });
});
