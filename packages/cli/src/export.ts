/**
 * `softbias export model.safetensors model.onnx`: rebuild the model a weights file describes (its stored config,
 * or timm key names and shapes) and write it as ONNX (`@softbias/onnx`): NHWC input `input` [batch, H, W, C],
 * output `logits`; an FCMAE file gives its encoder's dense-masked form (inputs `input` and `mask`).
 */
import { parseArgs } from 'node:util';
import { type BackendRequest, setupBackend } from '@softbias/tensor-ops';
import { models, readWeights } from '@softbias/tensor-ops/models';
import { ConViT } from '@softbias/models-convit';
import { ConvNeXtV2 } from '@softbias/models-convnextv2';
import { FCMAE_FAMILY, loadFcmae } from '@softbias/models-convnextv2/fcmae';
import { type ExportableModel, MAX_OPSET, MIN_OPSET, writeOnnx } from '@softbias/onnx';
import './models.js'; // registers every family

export const EXPORT_USAGE = `softbias export MODEL.safetensors MODEL.onnx [options]
  --opset N          ONNX opset, ${MIN_OPSET}…${MAX_OPSET} (default 17)
  --static-batch     a fixed batch dimension (--batch N, default 1) instead of the symbolic 'batch'
  --batch N          the batch of --static-batch
  --img-size H[,W]   ConvNeXt V2 / FCMAE input size (default the model's: 224; ConViT's is fixed)
  --external-data    weights in MODEL.onnx.data beside the graph (automatic above protobuf's 2 GiB limit)
  --single-file      never external data (a model over 2 GiB then fails instead)
  --backend NAME     tfjs backend that reads the weights (default cpu)`;

export interface ExportArgs {
  weights: string;
  out: string;
  opset: number;
  staticBatch: boolean;
  batch: number;
  imgSize?: [number, number];
  externalData: boolean | 'auto';
  backend: BackendRequest;
}

export function parseExportArgs(argv: string[]): ExportArgs {
  const { values, positionals } = parseArgs({
    args: argv,
    allowPositionals: true,
    strict: true,
    options: {
      opset: { type: 'string' },
      'static-batch': { type: 'boolean' },
      batch: { type: 'string' },
      'img-size': { type: 'string' },
      'external-data': { type: 'boolean' },
      'single-file': { type: 'boolean' },
      backend: { type: 'string' },
    },
  });
  if (positionals.length !== 2) throw new Error(`export needs a weights file and an output path\n${EXPORT_USAGE}`);
  const int = (v: string | undefined, fallback: number, name: string, min: number): number => {
    if (v === undefined) return fallback;
    const n = Number(v);
    if (!Number.isInteger(n) || n < min) throw new Error(`--${name} expects an integer ≥ ${min}, got '${v}'`);
    return n;
  };
  if (values['external-data'] && values['single-file']) throw new Error('--external-data and --single-file exclude each other');
  if (values.batch !== undefined && !values['static-batch']) throw new Error('--batch sets the batch of --static-batch: pass both');
  let imgSize: [number, number] | undefined;
  if (values['img-size'] !== undefined) {
    const s = values['img-size'].split(',').map((x) => int(x, 0, 'img-size', 1));
    if (s.length < 1 || s.length > 2) throw new Error(`--img-size expects H or H,W, got '${values['img-size']}'`);
    imgSize = [s[0]!, s[1] ?? s[0]!];
  }
  return {
    weights: positionals[0]!,
    out: positionals[1]!,
    opset: int(values.opset, 17, 'opset', 1),
    staticBatch: values['static-batch'] ?? false,
    batch: int(values.batch, 1, 'batch', 1),
    ...(imgSize ? { imgSize } : {}),
    externalData: values['external-data'] ? true : values['single-file'] ? false : 'auto',
    backend: (values.backend ?? 'cpu') as BackendRequest,
  };
}

export async function exportCmd(a: ExportArgs, log: (s: string) => void): Promise<void> {
  await setupBackend(a.backend);
  // The one place a file's family is told: the model registry (metadata, else tensor names).
  const file = await readWeights(a.weights);
  let family = models.familyOf(file).name;
  let model: ExportableModel & { dispose(): void };
  if (family === FCMAE_FAMILY) {
    model = await loadFcmae(file);
    family = 'fcmae (encoder, dense-masked form)';
  } else {
    const m = await models.fromFile(file);
    if (!(m instanceof ConViT) && !(m instanceof ConvNeXtV2)) {
      m.dispose();
      throw new Error(`softbias export: no ONNX exporter for the '${family}' family (ConViT, ConvNeXt V2 and FCMAE files export)`);
    }
    model = m;
  }
  try {
    const r = await writeOnnx(model, a.out, {
      opset: a.opset,
      dynamicBatch: !a.staticBatch,
      batchSize: a.batch,
      externalData: a.externalData,
      ...(a.imgSize ? { imgSize: a.imgSize } : {}),
    });
    const mib = (n: number) => `${(n / 2 ** 20).toFixed(1)} MiB`;
    const io = (v: { name: string; dims: (number | string)[] }) => `${v.name} [${v.dims.join(', ')}]`;
    log(`${a.weights} (${family}) → ${r.path} (${mib(r.modelBytes)})${r.dataPath ? ` + ${r.dataPath} (${mib(r.dataBytes)}, external data)` : ''}`);
    log(`opset ${r.info.opset}; inputs ${r.info.inputs.map(io).join(', ')} (NHWC float32); output ${io(r.info.output)}`);
  } finally {
    model.dispose();
  }
}
