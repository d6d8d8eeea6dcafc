/**
 * Fuzzes the safetensors parser with a fixed seed: thousands of mutated valid files (byte flips, truncations,
 * header JSON edits of offsets / shape / dtype / names / metadata, header-length edits, appended bytes). Each one
 * must either parse into tensors whose byte counts agree with shape × dtype and which tile the data section, or
 * throw a SafetensorsError: never another exception, never a hang.
 */
import { describe, it, expect } from 'vitest';
import {
  parseSafetensors,
  serializeSafetensors,
  SafetensorsError,
  DTYPE_SIZES,
  Rng,
  type SafetensorsDtype,
  type SafetensorsTensor,
} from '@softbias/tensor-ops';

const enc = new TextEncoder();
const dec = new TextDecoder();
const DTYPES = Object.keys(DTYPE_SIZES) as SafetensorsDtype[];

/** Valid files to mutate: mixed dtypes at unaligned offsets, metadata, a scalar, an empty tensor. */
function baseFiles(rng: Rng): Uint8Array[] {
  const files: Uint8Array[] = [];
  files.push(
    serializeSafetensors(
      {
        'patch_embed.proj.weight': { data: Float32Array.from({ length: 24 }, () => rng.normal()), shape: [2, 3, 2, 2] },
        'patch_embed.proj.bias': { data: Float32Array.from({ length: 2 }, () => rng.normal()), shape: [2] },
        scalar: { data: new Float32Array([3]), shape: [] },
      },
      { metadata: { config: JSON.stringify({ embed_dim: 2, depth: 1 }), format: 'pt' } },
    ),
  );
  files.push(
    serializeSafetensors({ h: { data: Float32Array.from({ length: 10 }, () => rng.normal()), shape: [5, 2] } }, { dtype: 'F16' }),
  );
  // Every dtype, hand-packed, one after the other (odd offsets), with an empty tensor in the middle.
  const header: Record<string, unknown> = { __metadata__: { note: 'all dtypes' } };
  const data: number[] = [];
  let i = 0;
  for (const dtype of DTYPES) {
    const count = 1 + (i % 3);
    const n = count * DTYPE_SIZES[dtype];
    header[`t${i}`] = { dtype, shape: [count], data_offsets: [data.length, data.length + n] };
    for (let k = 0; k < n; k++) data.push(dtype === 'BOOL' ? k % 2 : rng.int(256));
    if (i === 4) header['empty'] = { dtype: 'F32', shape: [0, 4], data_offsets: [data.length, data.length] };
    i++;
  }
  const json = enc.encode(JSON.stringify(header));
  const out = new Uint8Array(8 + json.length + data.length);
  new DataView(out.buffer).setBigUint64(0, BigInt(json.length), true);
  out.set(json, 8);
  out.set(data, 8 + json.length);
  files.push(out);
  return files;
}

function splitFile(bytes: Uint8Array): { header: any; data: Uint8Array } {
  const n = Number(new DataView(bytes.buffer, bytes.byteOffset).getBigUint64(0, true));
  return { header: JSON.parse(dec.decode(bytes.subarray(8, 8 + n))), data: bytes.subarray(8 + n) };
}

function joinFile(headerText: string, data: Uint8Array, lengthField?: bigint): Uint8Array {
  const json = enc.encode(headerText);
  const out = new Uint8Array(8 + json.length + data.length);
  new DataView(out.buffer).setBigUint64(0, lengthField ?? BigInt(json.length), true);
  out.set(json, 8);
  out.set(data, 8 + json.length);
  return out;
}

const weirdNumbers = [-1, 0, 1, 2, 3, 7, 8, 1.5, 2 ** 31, 2 ** 53, 2 ** 53 + 2, 1e300, -0, NaN, '4', null, true, [], {}];

function pick<T>(rng: Rng, a: readonly T[]): T {
  return a[rng.int(a.length)]!;
}

/** One random edit of a tensor entry or of the metadata, in the JSON header. */
function mutateHeader(rng: Rng, header: any): void {
  const names = Object.keys(header).filter((k) => k !== '__metadata__');
  const name = pick(rng, names);
  const e = header[name];
  switch (rng.int(12)) {
    case 0: // shift one offset
      e.data_offsets[rng.int(2)] += rng.int(9) - 4;
      break;
    case 1: // swap offsets
      e.data_offsets = [e.data_offsets[1], e.data_offsets[0]];
      break;
    case 2: // weird offset value
      e.data_offsets[rng.int(2)] = pick(rng, weirdNumbers);
      break;
    case 3: // change a dimension / add / drop one
      if (e.shape.length && rng.random() < 0.5) e.shape[rng.int(e.shape.length)] = pick(rng, weirdNumbers);
      else if (rng.random() < 0.5) e.shape.push(rng.int(4));
      else e.shape.pop();
      break;
    case 4: // another dtype, valid or not
      e.dtype = rng.random() < 0.7 ? pick(rng, DTYPES) : pick(rng, ['F8', 'f32', 'toString', '', 7, null]);
      break;
    case 5: // drop the entry (leaves a gap or trailing bytes)
      delete header[name];
      break;
    case 6: // duplicate an entry under another name (overlap)
      header[`${name}_dup`] = JSON.parse(JSON.stringify(e));
      break;
    case 7: // metadata edits
      header.__metadata__ = pick(rng, [{ a: 1 }, 'x', null, [], { a: 'b' }, { config: '{' }]);
      break;
    case 8: // remove a field
      delete e[pick(rng, ['dtype', 'shape', 'data_offsets'])];
      break;
    case 9: // replace the entry by something odd
      header[name] = pick(rng, [null, 1, 'x', [], { dtype: 'F32' }]);
      break;
    case 10: // consistent-looking lie: shape fits the byte count of another dtype
      e.dtype = pick(rng, DTYPES);
      e.shape = [Math.max(0, Math.floor((e.data_offsets[1] - e.data_offsets[0]) / 2))];
      break;
    default: // both offsets moved together (keeps the byte count)
      {
        const d = rng.int(7) - 3;
        e.data_offsets = [e.data_offsets[0] + d, e.data_offsets[1] + d];
      }
      break;
  }
}

function mutate(rng: Rng, base: Uint8Array): Uint8Array {
  const kind = rng.int(6);
  if (kind === 0) {
    // byte flips anywhere (length field, header, data)
    const out = base.slice();
    const flips = 1 + rng.int(6);
    for (let i = 0; i < flips; i++) out[rng.int(out.length)] ^= 1 << rng.int(8);
    return out;
  }
  if (kind === 1) {
    // byte flips inside the header JSON only (most likely to stay parseable)
    const out = base.slice();
    const n = Number(new DataView(out.buffer).getBigUint64(0, true));
    const flips = 1 + rng.int(3);
    for (let i = 0; i < flips; i++) out[8 + rng.int(n)] = pick(rng, [0x30 + rng.int(10), 0x2c, 0x22, 0x7d, 0x5d, 0x20, rng.int(256)]);
    return out;
  }
  if (kind === 2) return base.slice(0, rng.int(base.length)); // truncation
  if (kind === 3) {
    // header length field edits
    const out = base.slice();
    const v = new DataView(out.buffer);
    const n = v.getBigUint64(0, true);
    const options = [n + BigInt(rng.int(17)) - 8n, 0n, 1n, BigInt(out.length), 2n ** 63n, 2n ** 64n - 1n, BigInt(rng.nextUint32()), 100_000_001n];
    v.setBigUint64(0, BigInt.asUintN(64, pick(rng, options)), true);
    return out;
  }
  if (kind === 4) {
    // header JSON edits, re-packed with a correct (or, sometimes, stale) length field
    let split: { header: any; data: Uint8Array };
    try {
      split = splitFile(base);
      if (split.header === null || typeof split.header !== 'object') throw new Error('not an object');
    } catch {
      return base.slice(0, Math.max(0, base.length - 1)); // a second mutation of an already broken header
    }
    const { header, data } = split;
    const edits = 1 + rng.int(3);
    for (let i = 0; i < edits; i++) {
      try {
        mutateHeader(rng, header);
      } catch {
        /* an earlier edit already broke this entry: keep that */
      }
    }
    const text = JSON.stringify(header);
    const stale = rng.random() < 0.1 ? BigInt(enc.encode(text).length + rng.int(5) - 2) : undefined;
    return joinFile(text, data, stale === undefined ? undefined : BigInt.asUintN(64, stale));
  }
  // appended or removed data bytes
  const out = new Uint8Array(base.length + rng.int(9));
  out.set(base);
  return rng.random() < 0.5 ? out : base.slice(0, base.length - 1 - rng.int(4));
}

/** A file that parsed: every tensor must decode to exactly shape × dtype bytes and tile the data section. */
function checkConsistent(bytes: Uint8Array): void {
  const file = parseSafetensors(bytes);
  const n = Number(new DataView(bytes.buffer, bytes.byteOffset).getBigUint64(0, true));
  const dataLen = bytes.length - 8 - n;
  let cover = 0;
  const spans: [number, number][] = [];
  for (const name of file.names()) {
    const e = file.info(name);
    const count = e.shape.reduce((a, b) => a * b, 1);
    expect(e.dataOffsets[1] - e.dataOffsets[0], `${name}: byte count`).toBe(count * DTYPE_SIZES[e.dtype]);
    expect(e.dataOffsets[1]).toBeLessThanOrEqual(dataLen);
    spans.push(e.dataOffsets);
    cover += e.dataOffsets[1] - e.dataOffsets[0];
    let t: SafetensorsTensor;
    try {
      t = file.get(name);
    } catch (err) {
      // Only BOOL bytes other than 0/1 may fail at decode time, and only with a SafetensorsError.
      expect(err).toBeInstanceOf(SafetensorsError);
      expect(e.dtype).toBe('BOOL');
      continue;
    }
    expect(t.data.length, `${name}: element count`).toBe(count);
    expect(t.shape).toEqual(e.shape);
    for (const x of t.shape) expect(Number.isInteger(x) && x >= 0).toBe(true);
  }
  expect(cover).toBe(dataLen);
  spans.sort((a, b) => a[0] - b[0]);
  for (let i = 1; i < spans.length; i++) expect(spans[i]![0]).toBeGreaterThanOrEqual(spans[i - 1]![1]);
}

describe('safetensors fuzzer (fixed seed)', () => {
  it('every mutated file parses consistently or throws SafetensorsError', () => {
    const rng = new Rng(20240611);
    const bases = baseFiles(rng);
    for (const b of bases) checkConsistent(b);
    const N = 10_000;
    const outcomes = { parsed: 0, rejected: 0 };
    const messages = new Map<string, number>();
    const t0 = performance.now();
    for (let i = 0; i < N; i++) {
      const base = bases[i % bases.length]!;
      let bytes = mutate(rng, base);
      if (rng.random() < 0.2) bytes = mutate(rng, bytes.length >= 8 ? bytes : base); // sometimes two mutations
      if (rng.random() < 0.25) {
        // Also as a Node Buffer view at an offset into a larger allocation (Buffer.slice does not copy).
        const host = Buffer.alloc(bytes.length + 16, 0xab);
        host.set(bytes, 5);
        bytes = host.subarray(5, 5 + bytes.length);
      }
      let parsed = false;
      try {
        checkConsistent(bytes);
        parsed = true;
      } catch (e) {
        if (!(e instanceof SafetensorsError)) {
          const hex = Buffer.from(bytes).toString('base64');
          throw new Error(`mutation ${i}: ${(e as Error)?.name}: ${(e as Error)?.message} (file base64 ${hex})`);
        }
        const key = e.message.replace(/'[^']*'/g, "'…'").replace(/\d+/g, 'N').slice(0, 60);
        messages.set(key, (messages.get(key) ?? 0) + 1);
      }
      if (parsed) outcomes.parsed++;
      else outcomes.rejected++;
    }
    const ms = performance.now() - t0;
    console.log(
      `fuzzed ${N} files in ${ms.toFixed(0)} ms: ${outcomes.parsed} parsed consistently, ${outcomes.rejected} rejected ` +
        `(${messages.size} distinct errors)`,
    );
    // The mutations must exercise both outcomes and many different checks.
    expect(outcomes.parsed).toBeGreaterThan(100);
    expect(outcomes.rejected).toBeGreaterThan(N / 2);
    expect(messages.size).toBeGreaterThan(15);
    expect(ms, "hang guard (normally ~1.5 s)").toBeLessThan(30_000);
  }, 60_000);
});
