/**
 * Writing an export to disk (Node): the graph, and with external data its weights file beside it, streamed
 * chunk by chunk (the weights are never concatenated in memory). Node modules are imported on use, so the
 * package stays importable in a browser.
 */
import { type ExportOnnxOptions, type ExportableModel, type ExportInfo, exportOnnxParts } from './export.js';
import { PROTOBUF_LIMIT } from './proto.js';

export interface WriteOnnxOptions extends Omit<ExportOnnxOptions, 'externalData'> {
  /**
   * `true`: the weights go to `<file>.data` beside the model (a string names that file); `'auto'` (default):
   * only when the weights exceed protobuf's 2 GiB limit; `false`: never (such a model throws an OnnxSizeError).
   */
  externalData?: boolean | string | 'auto';
}

export interface WriteOnnxResult {
  path: string;
  /** Path of the external data file, or null. */
  dataPath: string | null;
  /** Bytes written: the graph, and the data file. */
  modelBytes: number;
  dataBytes: number;
  info: ExportInfo;
}

/** Export `model` and write it to `path` (atomically: a temporary file renamed into place). */
export async function writeOnnx(model: ExportableModel, path: string, opts: WriteOnnxOptions = {}): Promise<WriteOnnxResult> {
  const { open, rename, rm } = await import('node:fs/promises');
  const { basename, dirname, join } = await import('node:path');
  const mode = opts.externalData ?? 'auto';
  let external: boolean | string;
  if (mode === 'auto') {
    // From the parameter count (float32), with 64 MiB of headroom for the graph and GPSA's positional terms.
    external = estimateWeightBytes(model) > PROTOBUF_LIMIT - 64 * 2 ** 20 ? `${basename(path)}.data` : false;
  } else external = mode === true ? `${basename(path)}.data` : mode;
  const { externalData: _ignored, ...rest } = opts;
  const s = exportOnnxParts(model, { ...rest, externalData: external });
  const writeChunks = async (file: string, chunks: Uint8Array[]) => {
    const tmp = `${file}.tmp-${process.pid}`;
    const fh = await open(tmp, 'w');
    try {
      for (const c of chunks) {
        let o = 0;
        while (o < c.byteLength) {
          const { bytesWritten } = await fh.write(c, o, Math.min(c.byteLength - o, 2 ** 30));
          o += bytesWritten;
        }
      }
      await fh.sync();
    } catch (e) {
      await fh.close();
      await rm(tmp, { force: true });
      throw e;
    }
    await fh.close();
    await rename(tmp, file);
  };
  let dataPath: string | null = null;
  if (s.external) {
    dataPath = join(dirname(path), s.external.location);
    await writeChunks(dataPath, s.external.chunks);
  }
  await writeChunks(path, [s.model]);
  return { path, dataPath, modelBytes: s.model.byteLength, dataBytes: s.external?.size ?? 0, info: s.info };
}

/** float32 bytes of the parameters (an upper bound of the initializers' size, GPSA's positional terms aside). */
function estimateWeightBytes(model: ExportableModel): number {
  return 4 * model.numParameters();
}
