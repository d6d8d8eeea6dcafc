#!/usr/bin/env node
/** `softbias <command>`: demo | train | eval | inspect | bench | pretrain | export | list. */
import { parseArgs } from 'node:util';
import type { BackendRequest } from '@softbias/tensor-ops';
import { DEMO_DEFAULTS, runDemo } from './demo.js';
import { bench, evalCmd, inspect, train } from './commands.js';
import { pretrain } from './pretrain.js';
import { EXPORT_USAGE, exportCmd, parseExportArgs } from './export.js';
import { listAllModels } from './models.js';

const USAGE = `softbias <command> [options]

commands
  demo       ConViT vs its DeiT twin on the bundled Fashion-MNIST subset; prints both accuracies and writes
             an HTML report (accuracy, gates and nonlocality per epoch).
             --epochs N (${DEMO_DEFAULTS.epochs})  --out DIR (${DEMO_DEFAULTS.out})  --fraction F (${DEMO_DEFAULTS.fraction})
             --data embedded|auto|full (${DEMO_DEFAULTS.data})  --data-dir DIR  --width ${DEMO_DEFAULTS.embedDim}  --depth ${DEMO_DEFAULTS.depth}
             --heads ${DEMO_DEFAULTS.numHeads}  --gpsa-layers ${DEMO_DEFAULTS.localUpToLayer}  --batch-size ${DEMO_DEFAULTS.batchSize}  --seed 0
  train      --model NAME [--set key=value ...] [--data fashion-mnist|fashion-mnist-embedded|fashion-mnist-full|cifar10|folder]
             [--data-dir DIR] [--fraction F] [--epochs N] [--batch-size B] [--lr LR] [--weight-decay WD]
             [--out DIR] [--resume [--allow-settings-change]]   (checkpoints every epoch; Ctrl-C saves and stops,
             exit 130; --resume continues, refusing settings other than the checkpoint's unless allowed)
  eval       --weights FILE [--data ...] [--data-dir DIR]      top-1/top-5 and the confusion matrix
  inspect    --weights FILE | --model NAME [--set key=value]   parameters, MACs, gates, nonlocality
  bench      --model NAME [--set key=value] [--batch 1,8] [--runs N] [--threads T]
  pretrain   FCMAE masked pre-training of a ConvNeXt V2 encoder: [--data ...] [--epochs N] [--mask-ratio 0.6]
             [--depths 2,2,6,2] [--dims 40,80,160,320] [--out DIR] [--resume [--allow-settings-change]]
             (mask ratio in (0, 1); checkpoints every epoch, Ctrl-C saves and stops with exit 130)
  export     MODEL.safetensors MODEL.onnx [--opset 17] [--static-batch [--batch N]] [--img-size H,W]
             [--external-data | --single-file]   ONNX for onnxruntime / Triton (NHWC input, dynamic batch)
  list       registered model names

common: --backend auto|cpu|wasm|webgpu|tensorflow (auto), --progress bar|lines|none`;

function parseValue(v: string): unknown {
  if (v === 'true' || v === 'false') return v === 'true';
  if (v !== '' && !Number.isNaN(Number(v))) return Number(v);
  if (v.startsWith('[') || v.startsWith('{')) return JSON.parse(v);
  if (v.includes(',') && v.split(',').every((x) => !Number.isNaN(Number(x)))) return v.split(',').map(Number);
  return v;
}

function overridesFrom(sets: string[] | undefined): Record<string, unknown> {
  const o: Record<string, unknown> = {};
  for (const s of sets ?? []) {
    const i = s.indexOf('=');
    if (i <= 0) throw new Error(`--set expects key=value, got '${s}'`);
    o[s.slice(0, i)] = parseValue(s.slice(i + 1));
  }
  return o;
}

function num(v: string | undefined, fallback: number, name: string): number {
  if (v === undefined) return fallback;
  const n = Number(v);
  if (!Number.isFinite(n)) throw new Error(`--${name} expects a number, got '${v}'`);
  return n;
}

export async function main(argv: string[]): Promise<number> {
  const [command, ...rest] = argv;
  if (!command || command === '--help' || command === '-h' || command === 'help') {
    console.log(USAGE);
    return command ? 0 : 1;
  }
  if (command === 'export') {
    if (rest.includes('--help') || rest.includes('-h')) {
      console.log(EXPORT_USAGE);
      return 0;
    }
    await exportCmd(parseExportArgs(rest), (s) => console.log(s));
    return 0;
  }
  const { values } = parseArgs({
    args: rest,
    options: {
      backend: { type: 'string' },
      progress: { type: 'string' },
      epochs: { type: 'string' },
      out: { type: 'string' },
      fraction: { type: 'string' },
      data: { type: 'string' },
      'data-dir': { type: 'string' },
      width: { type: 'string' },
      depth: { type: 'string' },
      heads: { type: 'string' },
      'gpsa-layers': { type: 'string' },
      'batch-size': { type: 'string' },
      seed: { type: 'string' },
      model: { type: 'string' },
      set: { type: 'string', multiple: true },
      lr: { type: 'string' },
      'weight-decay': { type: 'string' },
      resume: { type: 'boolean' },
      'allow-settings-change': { type: 'boolean' },
      weights: { type: 'string' },
      batch: { type: 'string' },
      runs: { type: 'string' },
      threads: { type: 'string' },
      'mask-ratio': { type: 'string' },
      depths: { type: 'string' },
      dims: { type: 'string' },
    },
    strict: true,
  });
  const backend = (values.backend ?? 'auto') as BackendRequest;
  const progress = (values.progress ?? (process.stdout.isTTY ? 'bar' : 'lines')) as 'bar' | 'lines' | 'none';
  const log = (s: string) => console.log(s);
  switch (command) {
    case 'demo': {
      const data = (values.data ?? DEMO_DEFAULTS.data) as 'embedded' | 'auto' | 'full';
      await runDemo({
        ...DEMO_DEFAULTS,
        backend,
        progress: values.progress ? progress : 'none',
        epochs: num(values.epochs, DEMO_DEFAULTS.epochs, 'epochs'),
        out: values.out ?? DEMO_DEFAULTS.out,
        fraction: num(values.fraction, DEMO_DEFAULTS.fraction, 'fraction'),
        data,
        ...(values['data-dir'] ? { dataDir: values['data-dir'] } : {}),
        embedDim: num(values.width, DEMO_DEFAULTS.embedDim, 'width'),
        depth: num(values.depth, DEMO_DEFAULTS.depth, 'depth'),
        numHeads: num(values.heads, DEMO_DEFAULTS.numHeads, 'heads'),
        localUpToLayer: num(values['gpsa-layers'], DEMO_DEFAULTS.localUpToLayer, 'gpsa-layers'),
        batchSize: num(values['batch-size'], DEMO_DEFAULTS.batchSize, 'batch-size'),
        seed: num(values.seed, DEMO_DEFAULTS.seed, 'seed'),
        log,
      });
      return 0;
    }
    case 'train': {
      if (!values.model) throw new Error('train needs --model NAME (softbias list)');
      const outcome = await train(
        {
          model: values.model,
          overrides: overridesFrom(values.set),
          data: values.data ?? 'fashion-mnist',
          ...(values['data-dir'] ? { dataDir: values['data-dir'] } : {}),
          fraction: num(values.fraction, 1, 'fraction'),
          epochs: num(values.epochs, 10, 'epochs'),
          batchSize: num(values['batch-size'], 64, 'batch-size'),
          lr: num(values.lr, 1e-3, 'lr'),
          weightDecay: num(values['weight-decay'], 0.05, 'weight-decay'),
          warmupEpochs: 1,
          labelSmoothing: 0.1,
          seed: num(values.seed, 0, 'seed'),
          out: values.out ?? 'out/train',
          backend,
          resume: values.resume ?? false,
          allowSettingsChange: values['allow-settings-change'] ?? false,
          progress,
        },
        log,
      );
      // An interrupted run is not a success: 128 + the signal's number, as a shell reports it.
      return outcome.status === 'completed' ? 0 : outcome.signal === 'SIGTERM' ? 143 : 130;
    }
    case 'eval':
      if (!values.weights) throw new Error('eval needs --weights FILE');
      await evalCmd({ weights: values.weights, data: values.data ?? 'fashion-mnist', ...(values['data-dir'] ? { dataDir: values['data-dir'] } : {}), backend }, log);
      return 0;
    case 'inspect':
      await inspect(
        {
          ...(values.weights ? { weights: values.weights } : {}),
          ...(values.model ? { model: values.model } : {}),
          overrides: overridesFrom(values.set),
          data: values.data ?? 'fashion-mnist',
          ...(values['data-dir'] ? { dataDir: values['data-dir'] } : {}),
          backend,
        },
        log,
      );
      return 0;
    case 'bench':
      if (!values.model) throw new Error('bench needs --model NAME (softbias list)');
      await bench(
        {
          model: values.model,
          overrides: overridesFrom(values.set),
          batch: (values.batch ?? '1,8').split(',').map(Number),
          runs: num(values.runs, 5, 'runs'),
          backend,
          threads: num(values.threads, 1, 'threads'),
        },
        log,
      );
      return 0;
    case 'pretrain': {
      const outcome = await pretrain(
        {
          data: values.data ?? 'fashion-mnist',
          ...(values['data-dir'] ? { dataDir: values['data-dir'] } : {}),
          epochs: num(values.epochs, 5, 'epochs'),
          maskRatio: num(values['mask-ratio'], 0.6, 'mask-ratio'),
          depths: (values.depths ?? '2,2,6,2').split(',').map(Number),
          dims: (values.dims ?? '40,80,160,320').split(',').map(Number),
          batchSize: num(values['batch-size'], 64, 'batch-size'),
          lr: num(values.lr, 1.5e-3, 'lr'),
          seed: num(values.seed, 0, 'seed'),
          fraction: num(values.fraction, 1, 'fraction'),
          out: values.out ?? 'out/pretrain',
          backend,
          progress,
          resume: values.resume ?? false,
          allowSettingsChange: values['allow-settings-change'] ?? false,
        },
        log,
      );
      return outcome.status === 'completed' ? 0 : outcome.signal === 'SIGTERM' ? 143 : 130;
    }
    case 'list':
      for (const m of listAllModels()) console.log(`${m.family.padEnd(11)} ${m.name}`);
      return 0;
    default:
      console.error(`unknown command '${command}'\n\n${USAGE}`);
      return 1;
  }
}

const isMain = process.argv[1] && import.meta.url === new URL(`file://${process.argv[1]}`).href;
const invokedAsBin = process.argv[1]?.endsWith('/softbias') || process.argv[1]?.endsWith('bin.js');
if (isMain || invokedAsBin) {
  main(process.argv.slice(2)).then(
    (code) => process.exit(code),
    (e: Error) => {
      console.error(`softbias: ${e.message}`);
      process.exit(1);
    },
  );
}
