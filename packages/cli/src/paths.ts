/**
 * Checks of the command line's paths before anything runs: an output folder must be (or become) a writable
 * folder, an output file must not be a folder, a FIFO or a device (writing to a FIFO blocks until a reader
 * comes; /dev/full fails only when the first write is flushed, after the work is done), and an input weights
 * file must be a weights file (a training checkpoint is told apart, with how to get weights from it).
 */
import { type Stats, closeSync, existsSync, mkdirSync, openSync, readSync, statSync, unlinkSync, writeSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { UsageError } from './options.js';

function kindOf(st: Stats): string {
  if (st.isDirectory()) return 'a folder';
  if (st.isFIFO()) return 'a FIFO (named pipe)';
  if (st.isCharacterDevice() || st.isBlockDevice()) return 'a device';
  if (st.isSocket()) return 'a socket';
  if (st.isFile()) return 'a file';
  return 'not a regular file or folder';
}

function codeOf(e: unknown): string {
  return (e as { code?: string }).code ?? (e as Error).message;
}

/** Write and remove a probe file: catches read-only file systems, missing permissions and a full disk. */
function probeWritable(dir: string, flag: string, shown: string): void {
  const probe = join(dir, `.softbias-write-check-${process.pid}-${Date.now()}`);
  let fd: number | undefined;
  try {
    fd = openSync(probe, 'wx');
    writeSync(fd, 'softbias');
  } catch (e) {
    throw new UsageError(`${flag} ${shown}: cannot write there (${codeOf(e)}: ${(e as Error).message})`);
  } finally {
    if (fd !== undefined) closeSync(fd);
    try {
      unlinkSync(probe);
    } catch {
      // nothing was created
    }
  }
}

/** `--out DIR`: an existing folder, or one that can be created; writable. Returns the resolved path. */
export function checkOutDir(dir: string, flag = '--out'): string {
  const abs = resolve(dir);
  if (existsSync(abs)) {
    const st = statSync(abs);
    if (!st.isDirectory()) {
      throw new UsageError(`${flag} ${dir} is ${kindOf(st)}, not a folder: give a folder to write into (it is created when missing)`);
    }
  } else {
    // The nearest existing ancestor must be a folder.
    let up = dirname(abs);
    while (!existsSync(up) && dirname(up) !== up) up = dirname(up);
    const st = statSync(up);
    if (!st.isDirectory()) throw new UsageError(`${flag} ${dir}: ${up} is ${kindOf(st)}, not a folder, so the folder cannot be created`);
    try {
      mkdirSync(abs, { recursive: true });
    } catch (e) {
      throw new UsageError(`${flag} ${dir}: cannot create the folder (${codeOf(e)}: ${(e as Error).message})`);
    }
  }
  probeWritable(abs, flag, dir);
  return abs;
}

/** An output FILE: not a folder, FIFO or device; its folder exists and is writable. */
export function checkOutFile(path: string, flag: string): string {
  const abs = resolve(path);
  if (existsSync(abs)) {
    const st = statSync(abs);
    if (!st.isFile()) throw new UsageError(`${flag} ${path} is ${kindOf(st)}, not a regular file: give a file path to write`);
  }
  const dir = dirname(abs);
  if (!existsSync(dir)) throw new UsageError(`${flag} ${path}: the folder ${dir} does not exist`);
  const st = statSync(dir);
  if (!st.isDirectory()) throw new UsageError(`${flag} ${path}: ${dir} is ${kindOf(st)}, not a folder`);
  probeWritable(dir, flag, path);
  return abs;
}

/** The `__metadata__` of a safetensors file, read from its header alone (undefined when it is not one). */
function peekMetadata(path: string): Record<string, string> | undefined {
  const fd = openSync(path, 'r');
  try {
    const head = Buffer.alloc(8);
    if (readSync(fd, head, 0, 8, 0) < 8) return undefined;
    const n = Number(head.readBigUInt64LE(0));
    if (!(n >= 2 && n <= 100_000_000)) return undefined;
    const json = Buffer.alloc(n);
    if (readSync(fd, json, 0, n, 8) < n) return undefined;
    const header = JSON.parse(json.toString('utf8')) as { __metadata__?: Record<string, string> };
    return header.__metadata__ ?? {};
  } catch {
    return undefined;
  } finally {
    closeSync(fd);
  }
}

/**
 * An input weights file (`flag` names the option): it must exist and be a regular file, and a training
 * checkpoint is refused with what it is and how to get weights from it.
 */
export function checkWeightsFile(path: string, flag: string, command: string): void {
  if (/^(https?|blob|data):/i.test(path)) return; // URLs are checked when fetched
  if (!existsSync(path)) throw new UsageError(`${flag} ${path}: no such file`);
  const st = statSync(path);
  if (!st.isFile()) throw new UsageError(`${flag} ${path} is ${kindOf(st)}, not a weights file`);
  const meta = peekMetadata(path);
  if (meta?.['format'] === 'softbias-checkpoint') {
    let step = '';
    try {
      const m = JSON.parse(meta['softbias.checkpoint'] ?? '{}') as { step?: number };
      if (typeof m.step === 'number') step = ` at step ${m.step}`;
    } catch {
      // the step is only for the message
    }
    const dir = dirname(path);
    throw new UsageError(
      `${flag} ${path} is a training checkpoint${step} (weights, AdamW moments, RNG and sampler state for --resume), not a weights file. ` +
        `softbias train writes the weights to ${join(dir, 'model.safetensors')} when the run completes: finish the run with ` +
        `softbias train --resume --out ${dir} (and the run's other options), then ${command} ${flag} ${join(dir, 'model.safetensors')}; ` +
        'in code, loadCheckpoint(path, { model }) from @softbias/train restores the weights into a model, and model.saveWeights(file) writes them.',
    );
  }
}
