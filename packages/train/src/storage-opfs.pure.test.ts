/**
 * `opfsStorage` against a fake origin-private file system (a `FileSystemDirectoryHandle` kept in Maps, with the
 * browser's commit-on-close semantics of `createWritable`): round trips, ENOENT for a missing key, a write that
 * fails or is still open leaves the old bytes readable (temporary file + move, or createWritable where `move`
 * is missing), ordered appends, and `fit` checkpointing through it then resuming bitwise equal to an
 * uninterrupted run.
 */
import { describe, it, expect } from 'vitest';
import * as tf from '@tensorflow/tfjs-core';
import { Rng, parseSafetensors } from '@softbias/tensor-ops';
import { ArrayDataset, DataLoader } from '@softbias/data';
import { fit, checkpointMeta, type FitOptions } from '@softbias/train';
import { opfsStorage, opfsAvailable, type OpfsDirectory, type OpfsFile } from './storage.js';
import { TinyViT } from '../test/tiny-model.js';

const notFoundError = () => Object.assign(new Error('not found'), { name: 'NotFoundError' });

/** A fake directory: files are byte arrays; a writable edits a swap copy that `close()` commits. */
class FakeDir implements OpfsDirectory {
  readonly files = new Map<string, Uint8Array>();
  readonly dirs = new Map<string, FakeDir>();
  /** Hooks for the tests: fail the next write, or hold every close until `release` is called. */
  failNextWrite = false;
  holdClose: Promise<void> | undefined;
  constructor(readonly withMove = true) {}
  async getDirectoryHandle(name: string, opts?: { create?: boolean }): Promise<OpfsDirectory> {
    let d = this.dirs.get(name);
    if (!d) {
      if (!opts?.create) throw notFoundError();
      d = new FakeDir(this.withMove);
      this.dirs.set(name, d);
    }
    return d;
  }
  async getFileHandle(name: string, opts?: { create?: boolean }): Promise<OpfsFile> {
    if (!this.files.has(name)) {
      if (!opts?.create) throw notFoundError();
      this.files.set(name, new Uint8Array(0));
    }
    const dir = this;
    let current = name;
    const handle: OpfsFile = {
      async getFile() {
        const b = dir.files.get(current);
        if (!b) throw notFoundError();
        return new Blob([b.slice()]);
      },
      async createWritable(o?: { keepExistingData?: boolean }) {
        let swap = o?.keepExistingData ? dir.files.get(current)!.slice() : new Uint8Array(0);
        return {
          async write(data) {
            if (dir.failNextWrite) {
              dir.failNextWrite = false;
              throw new Error('fake: disk full');
            }
            const chunk = typeof data === 'string' || data instanceof Uint8Array ? { position: swap.length, data } : data;
            const bytes = typeof chunk.data === 'string' ? new TextEncoder().encode(chunk.data) : chunk.data;
            const next = new Uint8Array(Math.max(swap.length, chunk.position + bytes.length));
            next.set(swap);
            next.set(bytes, chunk.position);
            swap = next;
          },
          async close() {
            await dir.holdClose;
            dir.files.set(current, swap);
          },
          async abort() {},
        };
      },
    };
    if (this.withMove) {
      handle.move = async (to, newName) => {
        expect(to).toBe(dir);
        dir.files.set(newName, dir.files.get(current)!);
        dir.files.delete(current);
        current = newName;
      };
    }
    return handle;
  }
  async removeEntry(name: string) {
    if (!this.files.delete(name)) throw notFoundError();
  }
}

const enc = new TextEncoder();
const dec = (b: Uint8Array) => new TextDecoder().decode(b);

describe.each([
  ['temporary file + move', true],
  ['createWritable only (no move)', false],
])('opfsStorage (%s)', (_label, withMove) => {
  it('round-trips bytes and text; a missing key is ENOENT; names stay flat', async () => {
    const root = new FakeDir(withMove);
    const s = opfsStorage('runs', { root });
    expect(s.name).toBe('opfs:runs');
    await expect(s.read('run/ckpt.safetensors')).rejects.toMatchObject({ code: 'ENOENT' });
    expect(await s.readText('run/log.jsonl')).toBeUndefined();
    await s.write('run/ckpt.safetensors', Uint8Array.from([1, 2, 3]));
    await s.write('run/ckpt.safetensors', Uint8Array.from([4, 5]));
    expect([...(await s.read('run/ckpt.safetensors'))]).toEqual([4, 5]);
    s.append('run/log.jsonl', 'a\n');
    s.append('run/log.jsonl', 'b\n');
    s.append('run/log.jsonl', 'c\n');
    await s.flush!();
    expect(await s.readText('run/log.jsonl')).toBe('a\nb\nc\n');
    const dir = root.dirs.get('runs')!;
    expect([...dir.files.keys()].sort()).toEqual(['run%2Fckpt.safetensors', 'run%2Flog.jsonl']); // no temp file left
    await s.remove!('run/ckpt.safetensors');
    await s.remove!('run/ckpt.safetensors'); // absent: no error
    await expect(s.read('run/ckpt.safetensors')).rejects.toMatchObject({ code: 'ENOENT' });
  });

  it('a failed write leaves the old bytes and no temp file; a write not yet closed is not seen', async () => {
    const root = new FakeDir(withMove);
    const s = opfsStorage('runs', { root });
    await s.write('k', enc.encode('old'));
    root.dirs.get('runs')!.failNextWrite = true;
    await expect(s.write('k', enc.encode('new'))).rejects.toThrow('disk full');
    expect(dec(await s.read('k'))).toBe('old');
    expect([...root.dirs.get('runs')!.files.keys()]).toEqual(['k']);

    let release!: () => void;
    root.dirs.get('runs')!.holdClose = new Promise<void>((r) => {
      release = r;
    });
    const writing = s.write('k', enc.encode('newer'));
    await new Promise((r) => setTimeout(r, 5));
    expect(dec(root.dirs.get('runs')!.files.get('k')!)).toBe('old'); // the reader's view mid-write
    release();
    await writing;
    expect(dec(await s.read('k'))).toBe('newer');
  });

  it('flush() surfaces a failed append once', async () => {
    const root = new FakeDir(withMove);
    const s = opfsStorage('runs', { root });
    s.append('log', 'x\n');
    await s.flush!();
    root.dirs.get('runs')!.failNextWrite = true;
    s.append('log', 'y\n');
    await expect(s.flush!()).rejects.toThrow('disk full');
    await s.flush!();
    expect(await s.readText('log')).toBe('x\n');
  });
});

describe('opfsStorage without OPFS', () => {
  it('says so when navigator.storage.getDirectory is missing', async () => {
    expect(opfsAvailable()).toBe(false); // Node has no navigator.storage
    await expect(opfsStorage().read('k')).rejects.toThrow(/not available/);
  });
});

function dataset(n: number): ArrayDataset {
  const rng = new Rng(7);
  const images = new Uint8Array(n * 64);
  for (let i = 0; i < images.length; i++) images[i] = rng.int(256);
  return new ArrayDataset({ images, labels: Array.from({ length: n }, (_, i) => i % 3), imageShape: [8, 8, 1] });
}
const newModel = () => new TinyViT({ imgSize: 8, patchSize: 4, inChans: 1, dim: 8, depth: 1, heads: 2, numClasses: 3, seed: 2 });
const options = (model: TinyViT, storage: FitOptions['storage'], extra: Partial<FitOptions> = {}): FitOptions => ({
  model,
  data: new DataLoader(dataset(24), { batchSize: 4, seed: 3 }),
  epochs: 2,
  numClasses: 3,
  optimizer: { lr: 3e-3 },
  checkpoint: { path: 'run/ckpt.safetensors', everySteps: 4 },
  log: 'run/log.jsonl',
  storage,
  progress: 'none',
  ...extra,
});

describe('fit with opfsStorage', () => {
  it('checkpoints into OPFS; abort + resume ends bitwise equal to an uninterrupted run', async () => {
    const start = tf.memory().numTensors;
    const a = opfsStorage('a', { root: new FakeDir() });
    const ma = newModel();
    const ra = await fit(options(ma, a));
    expect(ra.status).toBe('completed');
    const finalA = await a.read('run/ckpt.safetensors');
    expect(checkpointMeta(parseSafetensors(finalA)).step).toBe(12);
    expect((await a.readText('run/log.jsonl'))!.trim().split('\n').at(-1)).toContain('"end"');

    const b = opfsStorage('b', { root: new FakeDir() });
    const mb = newModel();
    const ac = new AbortController();
    const rb = await fit(options(mb, b, { signal: ac.signal, onProgress: (p) => p.step === 7 && ac.abort() }));
    expect(rb.status).toBe('aborted');
    expect(checkpointMeta(parseSafetensors(await b.read('run/ckpt.safetensors'))).step).toBe(7);
    rb.optimizer.dispose();
    mb.dispose();
    const mc = newModel();
    const rc = await fit(options(mc, b, { resume: true }));
    expect(rc.resumedFrom).toBe(7);
    expect(Buffer.compare(Buffer.from(await b.read('run/ckpt.safetensors')), Buffer.from(finalA))).toBe(0);
    ra.optimizer.dispose();
    rc.optimizer.dispose();
    ma.dispose();
    mc.dispose();
    expect(tf.memory().numTensors).toBe(start);
  });
});
