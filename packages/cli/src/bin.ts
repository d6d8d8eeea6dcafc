#!/usr/bin/env node
/** `softbias <command>`: demo | train | eval | inspect | bench | pretrain | export | list. */
import type { BackendRequest } from '@softbias/tensor-ops';
import { DEMO_DEFAULTS, runDemo } from './demo.js';
import { bench, evalCmd, inspect, train } from './commands.js';
import { pretrain } from './pretrain.js';
import { EXPORT_USAGE, exportCmd, parseExportArgs } from './export.js';
import { listAllModels } from './models.js';
import {
  BACKENDS,
  COMMANDS,
  DEMO_DATA,
  PROGRESS,
  TRAIN_DATA,
  UsageError,
  choiceOption,
  commandHelp,
  intListOption,
  intOption,
  numberOption,
  overridesOption,
  parseCommand,
} from './options.js';
import { checkOutDir, checkOutFile, checkWeightsFile } from './paths.js';

const USAGE = `softbias <command> [options]

commands
${Object.entries(COMMANDS)
  .map(([n, c]) => `  ${n.padEnd(10)} ${c.summary}`)
  .join('\n')}
  export     ONNX for onnxruntime / Triton: softbias export MODEL.safetensors MODEL.onnx [options]

softbias <command> --help lists a command's options (softbias help <command> too).
common: --backend ${BACKENDS.join('|')} (auto); demo, train, pretrain: --progress ${PROGRESS.join('|')}`;

function helpFor(command: string): string | undefined {
  if (command === 'export') return EXPORT_USAGE;
  return COMMANDS[command] ? commandHelp(command) : undefined;
}

/** Run the command line; returns the exit code (0 ok, 1 failed, 2 usage error, 130/143 interrupted). */
export async function main(argv: string[]): Promise<number> {
  const [command, ...rest] = argv;
  if (!command || command === '--help' || command === '-h' || command === 'help') {
    const topic = command === 'help' ? rest[0] : undefined;
    if (topic !== undefined) {
      const h = helpFor(topic);
      if (!h) throw new UsageError(`unknown command '${topic}' (${[...Object.keys(COMMANDS), 'export'].join(', ')})`);
      console.log(h);
      return 0;
    }
    console.log(USAGE);
    return command ? 0 : 1;
  }
  if (rest.includes('--help') || rest.includes('-h')) {
    const h = helpFor(command);
    if (h) {
      console.log(h);
      return 0;
    }
  }
  if (command === 'export') {
    let a: ReturnType<typeof parseExportArgs>;
    try {
      a = parseExportArgs(rest);
    } catch (e) {
      throw new UsageError(`${(e as Error).message} (softbias export --help)`);
    }
    checkWeightsFile(a.weights, 'MODEL.safetensors', 'export');
    checkOutFile(a.out, 'MODEL.onnx');
    await exportCmd(a, (s) => console.log(s));
    return 0;
  }
  if (!COMMANDS[command]) {
    throw new UsageError(`unknown command '${command}' (${[...Object.keys(COMMANDS), 'export'].join(', ')}; softbias --help)`);
  }
  const values = parseCommand(command, rest) as Record<string, string | undefined> & {
    set?: string[];
    resume?: boolean;
    'allow-settings-change'?: boolean;
    verbose?: boolean;
  };
  const backend = choiceOption(values.backend, 'backend', 'auto', BACKENDS) as BackendRequest;
  const progress = choiceOption(values.progress, 'progress', process.stdout.isTTY ? 'bar' : 'lines', PROGRESS);
  const dataDir = values['data-dir'] !== undefined ? { dataDir: values['data-dir'] } : {};
  const fraction = (fallback: number) => numberOption(values.fraction, 'fraction', fallback, { min: 0, minOpen: true, max: 1 });
  const seed = intOption(values.seed, 'seed', 0, 0);
  const log = (s: string) => console.log(s);
  if (values['allow-settings-change'] && !values.resume) throw new UsageError('--allow-settings-change goes with --resume');
  switch (command) {
    case 'demo': {
      const depth = intOption(values.depth, 'depth', DEMO_DEFAULTS.depth, 1);
      const opts = {
        ...DEMO_DEFAULTS,
        backend,
        // A bar inside epochs on a terminal; elsewhere (CI, pipes) only the epoch lines.
        progress: values.progress ? progress : process.stdout.isTTY ? ('bar' as const) : ('none' as const),
        verbose: values.verbose === true,
        epochs: intOption(values.epochs, 'epochs', DEMO_DEFAULTS.epochs, 1),
        fraction: fraction(DEMO_DEFAULTS.fraction),
        data: choiceOption(values.data, 'data', DEMO_DEFAULTS.data, DEMO_DATA),
        ...dataDir,
        embedDim: intOption(values.width, 'width', DEMO_DEFAULTS.embedDim, 1),
        depth,
        numHeads: intOption(values.heads, 'heads', DEMO_DEFAULTS.numHeads, 1),
        localUpToLayer: intOption(values['gpsa-layers'], 'gpsa-layers', DEMO_DEFAULTS.localUpToLayer, 0, depth),
        batchSize: intOption(values['batch-size'], 'batch-size', DEMO_DEFAULTS.batchSize, 1),
        seed: intOption(values.seed, 'seed', DEMO_DEFAULTS.seed, 0),
        log,
      };
      if (opts.embedDim % opts.numHeads !== 0) throw new UsageError(`--heads ${opts.numHeads} must divide --width ${opts.embedDim}`);
      await runDemo({ ...opts, out: checkOutDir(values.out ?? DEMO_DEFAULTS.out) });
      return 0;
    }
    case 'train': {
      const start = [values.pretrained && '--pretrained', values.weights && '--weights'].filter(Boolean);
      if (start.length > 1) throw new UsageError('train takes --pretrained ID or --weights FILE, not both');
      if (start.length && values.model) throw new UsageError(`train takes --model NAME or ${start[0]}, not both (${start[0]} names its model)`);
      if (!values.model && !start.length) throw new UsageError('train needs --model NAME (softbias list), --pretrained ID or --weights FILE');
      if (values.weights) checkWeightsFile(values.weights, '--weights', 'train');
      if (values.weights && values.set) throw new UsageError('--set applies to --model and --pretrained; a weights file carries its own config');
      const args = {
        model: values.model ?? '',
        ...(values.pretrained ? { pretrained: values.pretrained } : {}),
        ...(values.weights ? { weights: values.weights } : {}),
        overrides: overridesOption(values.set),
        data: choiceOption(values.data, 'data', 'fashion-mnist', TRAIN_DATA),
        ...dataDir,
        fraction: fraction(1),
        epochs: intOption(values.epochs, 'epochs', 10, 1),
        batchSize: intOption(values['batch-size'], 'batch-size', 64, 1),
        lr: numberOption(values.lr, 'lr', 1e-3, { min: 0, minOpen: true }),
        weightDecay: numberOption(values['weight-decay'], 'weight-decay', 0.05, { min: 0 }),
        warmupEpochs: 1,
        labelSmoothing: 0.1,
        seed,
        backend,
        resume: values.resume ?? false,
        allowSettingsChange: values['allow-settings-change'] ?? false,
        progress,
        verbose: values.verbose === true,
      };
      const outcome = await train({ ...args, out: checkOutDir(values.out ?? 'out/train') }, log);
      // An interrupted run is not a success: 128 + the signal's number, as a shell reports it.
      return outcome.status === 'completed' ? 0 : outcome.signal === 'SIGTERM' ? 143 : 130;
    }
    case 'eval': {
      if (!values.weights) throw new UsageError('eval needs --weights FILE');
      const data = choiceOption(values.data, 'data', 'fashion-mnist', TRAIN_DATA);
      checkWeightsFile(values.weights, '--weights', 'eval');
      await evalCmd({ weights: values.weights, data, ...dataDir, backend, verbose: values.verbose === true }, log);
      return 0;
    }
    case 'inspect': {
      if (values.weights && values.model) throw new UsageError('inspect takes --weights FILE or --model NAME, not both');
      if (!values.weights && !values.model) throw new UsageError('inspect needs --weights FILE or --model NAME');
      if (values.weights && values.set) throw new UsageError('--set applies to --model; a weights file carries its own config');
      const data = choiceOption(values.data, 'data', 'fashion-mnist', TRAIN_DATA);
      if (values.weights) checkWeightsFile(values.weights, '--weights', 'inspect');
      await inspect(
        {
          ...(values.weights ? { weights: values.weights } : {}),
          ...(values.model ? { model: values.model } : {}),
          overrides: overridesOption(values.set),
          data,
          ...dataDir,
          backend,
          verbose: values.verbose === true,
        },
        log,
      );
      return 0;
    }
    case 'bench': {
      if (!values.model) throw new UsageError('bench needs --model NAME (softbias list)');
      await bench(
        {
          model: values.model,
          overrides: overridesOption(values.set),
          batch: intListOption(values.batch, 'batch', [1, 8], 1),
          runs: intOption(values.runs, 'runs', 5, 1),
          backend,
          threads: intOption(values.threads, 'threads', 1, 1),
          verbose: values.verbose === true,
        },
        log,
      );
      return 0;
    }
    case 'pretrain': {
      const args = {
        data: choiceOption(values.data, 'data', 'fashion-mnist', TRAIN_DATA),
        ...dataDir,
        epochs: intOption(values.epochs, 'epochs', 5, 1),
        maskRatio: numberOption(values['mask-ratio'], 'mask-ratio', 0.6, { min: 0, minOpen: true, max: 1, maxOpen: true }),
        depths: intListOption(values.depths, 'depths', [2, 2, 6, 2], 1, 4),
        dims: intListOption(values.dims, 'dims', [40, 80, 160, 320], 1, 4),
        batchSize: intOption(values['batch-size'], 'batch-size', 64, 1),
        lr: numberOption(values.lr, 'lr', 1.5e-3, { min: 0, minOpen: true }),
        seed,
        fraction: fraction(1),
        backend,
        progress,
        resume: values.resume ?? false,
        allowSettingsChange: values['allow-settings-change'] ?? false,
        verbose: values.verbose === true,
      };
      const outcome = await pretrain({ ...args, out: checkOutDir(values.out ?? 'out/pretrain') }, log);
      return outcome.status === 'completed' ? 0 : outcome.signal === 'SIGTERM' ? 143 : 130;
    }
    case 'list':
      for (const m of listAllModels()) console.log(`${m.family.padEnd(11)} ${m.name}`);
      return 0;
    default:
      throw new UsageError(`unknown command '${command}'`);
  }
}

const isMain = process.argv[1] && import.meta.url === new URL(`file://${process.argv[1]}`).href;
const invokedAsBin = process.argv[1]?.endsWith('/softbias') || process.argv[1]?.endsWith('bin.js');
if (isMain || invokedAsBin) {
  main(process.argv.slice(2)).then(
    (code) => process.exit(code),
    (e: Error) => {
      if (e instanceof UsageError) {
        const cmd = process.argv[2];
        console.error(`softbias: ${e.message}${cmd && helpFor(cmd) && !/--help\)$/.test(e.message) ? `\n(softbias ${cmd} --help lists its options)` : ''}`);
        process.exit(e.exitCode);
      }
      console.error(`softbias: ${e.message}`);
      process.exit(1);
    },
  );
}
