/** Loading weights refuses NaN / ±Infinity unless `{ allowNonFinite: true }`; a refused load changes nothing. */
import { describe, it, expect } from 'vitest';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Linear, Rng, StateDictError, loadSafetensorsInto, parseSafetensors, saveSafetensorsBytes, serializeSafetensors } from '@softbias/tensor-ops';

/** The bytes of a weights file with value `v` put at index 3 of tensor `name`. */
function poisoned(bytes: Uint8Array, name: string, v: number): Uint8Array {
  const f = parseSafetensors(bytes);
  const tensors = f.names().map((n) => {
    const t = f.getFloat32(n);
    if (n === name) t.data[3] = v;
    return [n, t] as [string, { data: Float32Array; shape: number[] }];
  });
  return serializeSafetensors(tensors, { metadata: { ...f.metadata } });
}

describe('non-finite weights', () => {
  it('loadStateDict / loadSafetensorsInto refuse NaN and Infinity, naming the key; allowNonFinite loads them', async () => {
    const lin = new Linear(4, 3, { rng: new Rng(1) });
    const good = await saveSafetensorsBytes(lin);
    const before = Array.from(lin.weight.variable.dataSync());
    for (const v of [NaN, Infinity, -Infinity]) {
      const bad = poisoned(good, 'weight', v);
      const path = join(mkdtempSync(join(tmpdir(), 'softbias-nonfinite-w-')), 'w.safetensors');
      writeFileSync(path, bad);
      const err = await loadSafetensorsInto(lin, path).then(
        () => undefined,
        (e: unknown) => e,
      );
      expect(err).toBeInstanceOf(StateDictError);
      expect((err as Error).message).toMatch(new RegExp(`Invalid entry "weight": holds ${String(v).replace('+', '')} at index 3 .*allowNonFinite`));
      expect(Array.from(lin.weight.variable.dataSync())).toEqual(before);
    }
    await loadSafetensorsInto(lin, poisoned(good, 'weight', NaN), { allowNonFinite: true });
    expect(Array.from(lin.weight.variable.dataSync()).filter(Number.isNaN)).toHaveLength(1);
    lin.dispose();
  });
});
