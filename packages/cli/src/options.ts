/**
 * The command line's options: one table per command (what it takes, with the help text), parsed with Node's
 * `util.parseArgs` in strict mode, and validated values. An option the command does not use, an unknown option,
 * a positional argument where none is taken, and a bad value are all refused with the valid choices (a
 * `UsageError`, exit code 2).
 */
import { parseArgs } from 'node:util';

/** A command line that cannot run as given (exit code 2, as usage errors conventionally get). */
export class UsageError extends Error {
  readonly exitCode = 2;
  constructor(message: string) {
    super(message);
    this.name = 'UsageError';
  }
}

export interface OptionSpec {
  type: 'string' | 'boolean';
  multiple?: boolean;
  /** The value's placeholder in help ('N', 'DIR', …). */
  arg?: string;
  help: string;
}

export interface CommandSpec {
  summary: string;
  /** Synopsis after `softbias <command>`. */
  synopsis?: string;
  options: Record<string, OptionSpec>;
  /** Extra help text after the options. */
  notes?: string;
}

export const BACKENDS = ['auto', 'cpu', 'wasm', 'webgpu', 'tensorflow'] as const;
export const PROGRESS = ['bar', 'lines', 'none'] as const;
export const TRAIN_DATA = ['fashion-mnist', 'fashion-mnist-embedded', 'fashion-mnist-full', 'cifar10', 'folder'] as const;
export const DEMO_DATA = ['embedded', 'auto', 'full'] as const;

const backend: OptionSpec = { type: 'string', arg: BACKENDS.join('|'), help: 'tfjs backend (default auto: webgpu, then wasm, then cpu)' };
const progress: OptionSpec = { type: 'string', arg: PROGRESS.join('|'), help: 'progress output (default bar on a terminal, else lines)' };
const help: OptionSpec = { type: 'boolean', help: 'this help' };
const verbose: OptionSpec = {
  type: 'boolean',
  help: "the backend's full story: why each backend was skipped (with the Vulkan set-up advice) and Dawn's adapter warnings",
};
const data: OptionSpec = { type: 'string', arg: TRAIN_DATA.join('|'), help: 'data set (default fashion-mnist: the full set when installed, else the embedded subset)' };
const dataDir: OptionSpec = { type: 'string', arg: 'DIR', help: 'where the data set is (cifar10: the .bin batches; folder: train/<class>/*, test/<class>/*)' };
const model: OptionSpec = { type: 'string', arg: 'NAME', help: 'registered model (softbias list)' };
const set: OptionSpec = { type: 'string', multiple: true, arg: 'key=value', help: 'model config override, repeatable (e.g. --set depth=6)' };
const out: OptionSpec = { type: 'string', arg: 'DIR', help: 'output folder (checked to be a writable folder before anything runs)' };
const epochs: OptionSpec = { type: 'string', arg: 'N', help: 'epochs, an integer ≥ 1' };
const fraction: OptionSpec = { type: 'string', arg: 'F', help: 'fraction of the training set per class, in (0, 1] (default 1)' };
const batchSize: OptionSpec = { type: 'string', arg: 'B', help: 'images per update, an integer ≥ 1' };
const lr: OptionSpec = { type: 'string', arg: 'LR', help: 'peak learning rate, > 0' };
const seed: OptionSpec = { type: 'string', arg: 'S', help: 'random seed, an integer ≥ 0 (default 0)' };
const resume: OptionSpec = { type: 'boolean', help: "continue from <out>/checkpoint.safetensors (refuses settings other than the checkpoint's)" };
const allowChange: OptionSpec = { type: 'boolean', help: "with --resume: accept settings that differ from the checkpoint's (listed in a warning)" };
const weights: OptionSpec = { type: 'string', arg: 'FILE', help: 'a weights file (model.safetensors written by train, or timm weights)' };

export const COMMANDS: Record<string, CommandSpec> = {
  demo: {
    summary: 'ConViT vs its DeiT twin on the bundled Fashion-MNIST subset; prints both accuracies and writes an HTML report',
    options: {
      epochs,
      out,
      fraction,
      data: { type: 'string', arg: DEMO_DATA.join('|'), help: 'Fashion-MNIST source (default embedded)' },
      'data-dir': dataDir,
      width: { type: 'string', arg: 'N', help: 'embedding width, an integer ≥ 1' },
      depth: { type: 'string', arg: 'N', help: 'blocks, an integer ≥ 1' },
      heads: { type: 'string', arg: 'N', help: 'attention heads, an integer ≥ 1 dividing the width' },
      'gpsa-layers': { type: 'string', arg: 'N', help: 'GPSA blocks first, an integer in [0, depth]' },
      'batch-size': batchSize,
      seed,
      backend,
      progress: { ...progress, help: 'progress inside epochs (default bar on a terminal, else none: one line per epoch)' },
      verbose,
      help,
    },
  },
  train: {
    summary: 'train a registered model; checkpoints every epoch, Ctrl-C saves and stops (exit 130), --resume continues',
    synopsis: '--model NAME | --pretrained ID | --weights FILE [options]',
    options: {
      model,
      pretrained: {
        type: 'string',
        arg: 'ID',
        help: "fine-tune a hub checkpoint (timm/convnextv2_atto.fcmae_ft_in1k; a registered name: its default tag): a new head for the data's classes, the checkpoint's input size and normalisation",
      },
      weights: { ...weights, help: "fine-tune a weights file (model.safetensors, or timm weights): a new head for the data's classes, its input size" },
      set,
      data,
      'data-dir': dataDir,
      fraction,
      epochs: { ...epochs, help: 'epochs, an integer ≥ 1 (default 10)' },
      'batch-size': { ...batchSize, help: 'images per update, an integer ≥ 1 (default 64)' },
      lr: { ...lr, help: 'peak learning rate, > 0 (default 1e-3)' },
      'weight-decay': { type: 'string', arg: 'WD', help: 'AdamW weight decay, ≥ 0 (default 0.05)' },
      seed,
      out: { ...out, help: 'output folder: checkpoint.safetensors, log.jsonl, model.safetensors (default out/train)' },
      resume,
      'allow-settings-change': allowChange,
      backend,
      verbose,
      progress,
      help,
    },
  },
  eval: {
    summary: 'top-1/top-5 and the confusion matrix of a weights file on a data set',
    synopsis: '--weights FILE [options]',
    options: { weights, data, 'data-dir': dataDir, backend, verbose, help },
  },
  inspect: {
    summary: 'parameters, MACs, gates and nonlocality of a weights file or a registered model',
    synopsis: '--weights FILE | --model NAME [--set key=value ...]',
    options: { weights, model, set, data, 'data-dir': dataDir, backend, verbose, help },
  },
  bench: {
    summary: 'forward throughput of a registered model on random images',
    synopsis: '--model NAME [options]',
    options: {
      model,
      set,
      batch: { type: 'string', arg: 'B[,B…]', help: 'batch sizes, integers ≥ 1 (default 1,8)' },
      runs: { type: 'string', arg: 'N', help: 'timed runs per batch size, an integer ≥ 1 (default 5)' },
      threads: { type: 'string', arg: 'T', help: 'wasm threads, an integer ≥ 1 (default 1)' },
      backend,
      verbose,
      help,
    },
  },
  pretrain: {
    summary: 'FCMAE masked pre-training of a ConvNeXt V2 encoder; checkpoints every epoch, Ctrl-C saves and stops (exit 130)',
    options: {
      data,
      'data-dir': dataDir,
      epochs: { ...epochs, help: 'epochs, an integer ≥ 1 (default 5)' },
      'mask-ratio': { type: 'string', arg: 'R', help: 'fraction of the patches masked, in (0, 1) (default 0.6)' },
      depths: { type: 'string', arg: 'D,D,D,D', help: 'blocks per stage, 4 integers ≥ 1 (default 2,2,6,2)' },
      dims: { type: 'string', arg: 'C,C,C,C', help: 'channels per stage, 4 integers ≥ 1 (default 40,80,160,320)' },
      'batch-size': { ...batchSize, help: 'images per update, an integer ≥ 1 (default 64)' },
      lr: { ...lr, help: 'peak learning rate, > 0 (default 1.5e-3)' },
      seed,
      fraction,
      out: { ...out, help: 'output folder (default out/pretrain)' },
      resume,
      'allow-settings-change': allowChange,
      backend,
      verbose,
      progress,
      help,
    },
  },
  list: { summary: 'registered model names', options: { help } },
};

/** Help for one command, generated from its table. */
export function commandHelp(name: string): string {
  const c = COMMANDS[name]!;
  const rows = Object.entries(c.options).map(([k, o]) => [`--${k}${o.type === 'string' ? ` ${o.arg ?? 'VALUE'}` : ''}`, o.help] as const);
  const w = Math.min(34, Math.max(...rows.map(([a]) => a.length)) + 2);
  const lines = rows.map(([a, h]) => `  ${a.padEnd(w)}${a.length >= w ? `\n  ${' '.repeat(w)}` : ''}${h}`);
  return `softbias ${name} ${c.synopsis ?? '[options]'}\n\n${c.summary}\n\noptions\n${lines.join('\n')}${c.notes ? `\n\n${c.notes}` : ''}`;
}

/** Commands that take an option (for "train does not take --weights (eval and inspect do)"). */
function takenBy(option: string): string[] {
  return Object.entries(COMMANDS)
    .filter(([, c]) => option in c.options)
    .map(([n]) => n);
}

function closest(word: string, choices: readonly string[]): string | undefined {
  let best: string | undefined;
  let bestD = Number.POSITIVE_INFINITY;
  for (const c of choices) {
    const d = editDistance(word, c);
    if (d < bestD) {
      bestD = d;
      best = c;
    }
  }
  return bestD <= Math.max(2, Math.floor(word.length / 3)) ? best : undefined;
}

function editDistance(a: string, b: string): number {
  const dp = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    let prev = dp[0]!;
    dp[0] = i;
    for (let j = 1; j <= b.length; j++) {
      const tmp = dp[j]!;
      dp[j] = Math.min(dp[j]! + 1, dp[j - 1]! + 1, prev + (a[i - 1] === b[j - 1] ? 0 : 1));
      prev = tmp;
    }
  }
  return dp[b.length]!;
}

export type ParsedValues = Record<string, string | boolean | string[] | undefined>;

/**
 * Parse `argv` for `command` (strict): refuses options the command does not take (naming the commands that do),
 * unknown options (with the closest one), positional arguments, and a string option without its value.
 */
export function parseCommand(command: string, rawArgv: string[]): ParsedValues {
  const spec = COMMANDS[command];
  if (!spec) throw new UsageError(`unknown command '${command}'`);
  const names = Object.keys(spec.options);
  // `--epochs -3`: a negative number is the option's value (parseArgs would read it as an option), so that the
  // value check can refuse it by name.
  const marked = rawArgv.map((a, i) => {
    const prev = rawArgv[i - 1];
    return /^-\d|^-\.\d/.test(a) && prev?.startsWith('--') && !prev.includes('=') && spec.options[prev.slice(2)]?.type === 'string' ? `\0${a}` : a;
  });
  const argv = marked.flatMap((a, i) => (a.startsWith('\0') ? [] : marked[i + 1]?.startsWith('\0') ? [`${a}=${marked[i + 1]!.slice(1)}`] : [a]));
  const options: Record<string, { type: 'string' | 'boolean'; multiple?: boolean }> = {};
  for (const [k, o] of Object.entries(spec.options)) options[k] = { type: o.type, ...(o.multiple ? { multiple: true } : {}) };
  // First pass (lenient, knowing every command's options so that their values are consumed) only to name what is
  // wrong; the strict pass below does the parsing.
  const every: Record<string, { type: 'string' | 'boolean'; multiple?: boolean }> = {};
  for (const c of Object.values(COMMANDS)) for (const [k, o] of Object.entries(c.options)) every[k] = { type: o.type, multiple: true };
  const { tokens } = parseArgs({ args: argv, options: every, strict: false, allowPositionals: true, tokens: true });
  for (const t of tokens ?? []) {
    if (t.kind === 'option' && !(t.name in spec.options)) {
      const flag = t.rawName.startsWith('--') ? `--${t.name}` : t.rawName;
      const others = takenBy(t.name);
      if (others.length > 0) {
        throw new UsageError(
          `${command} does not take ${flag} (${others.join(', ')} ${others.length === 1 ? 'does' : 'do'}); ${command}'s options: ${names.map((n) => `--${n}`).join(' ')}`,
        );
      }
      const near = closest(t.name, names);
      throw new UsageError(
        `unknown option ${flag} for ${command}${near ? ` (did you mean --${near}?)` : ''}; ${command}'s options: ${names.map((n) => `--${n}`).join(' ')}`,
      );
    }
    if (t.kind === 'positional') {
      throw new UsageError(`${command} takes no positional arguments, got '${t.value}' (options are written --name value; softbias ${command} --help)`);
    }
  }
  try {
    return parseArgs({ args: argv, options, strict: true, allowPositionals: false }).values as ParsedValues;
  } catch (e) {
    const msg = (e as Error).message;
    const code = (e as { code?: string }).code;
    const m = /Option '(-[^ ']+)(?:[^']*)' argument missing/.exec(msg);
    if (m) {
      const name = m[1]!.replace(/^-+/, '').replace(/,.*$/, '');
      const o = spec.options[name];
      throw new UsageError(`--${name} needs a value${o ? ` (${o.arg ?? 'VALUE'}: ${o.help})` : ''}`);
    }
    if (code === 'ERR_PARSE_ARGS_INVALID_OPTION_VALUE') throw new UsageError(`${msg.split('.')[0]} (softbias ${command} --help)`);
    throw new UsageError(`${msg} (softbias ${command} --help)`);
  }
}

// ------------------------------------------------------------------------------------------ values

function show(v: string): string {
  return `'${v}'`;
}

/** An integer ≥ `min` (and ≤ `max`). */
export function intOption(v: string | undefined, name: string, fallback: number, min: number, max = Number.MAX_SAFE_INTEGER): number {
  if (v === undefined) return fallback;
  const n = v.trim() === '' ? Number.NaN : Number(v);
  if (!Number.isInteger(n) || n < min || n > max) {
    throw new UsageError(`--${name} expects an integer ${max === Number.MAX_SAFE_INTEGER ? `≥ ${min}` : `in [${min}, ${max}]`}, got ${show(v)}`);
  }
  return n;
}

/** A finite number in a range; `open` ends are excluded. */
export function numberOption(
  v: string | undefined,
  name: string,
  fallback: number,
  range: { min?: number; max?: number; minOpen?: boolean; maxOpen?: boolean } = {},
): number {
  if (v === undefined) return fallback;
  const n = v.trim() === '' ? Number.NaN : Number(v);
  const { min, max, minOpen, maxOpen } = range;
  const ok =
    Number.isFinite(n) &&
    (min === undefined || (minOpen ? n > min : n >= min)) &&
    (max === undefined || (maxOpen ? n < max : n <= max));
  if (!ok) {
    const lo = min === undefined ? '' : minOpen ? `(${min}` : `[${min}`;
    const hi = max === undefined ? '' : maxOpen ? `${max})` : `${max}]`;
    const what =
      min !== undefined && max !== undefined ? `a number in ${lo}, ${hi}` : min !== undefined ? `a number ${minOpen ? '>' : '≥'} ${min}` : max !== undefined ? `a number ${maxOpen ? '<' : '≤'} ${max}` : 'a finite number';
    throw new UsageError(`--${name} expects ${what}, got ${show(v)}`);
  }
  return n;
}

/** One of `choices`. */
export function choiceOption<T extends string>(v: string | undefined, name: string, fallback: T, choices: readonly T[]): T {
  if (v === undefined) return fallback;
  if (!(choices as readonly string[]).includes(v)) {
    const near = closest(v, choices);
    throw new UsageError(`--${name} expects one of ${choices.join(', ')}, got ${show(v)}${near ? ` (did you mean ${near}?)` : ''}`);
  }
  return v as T;
}

/** Comma-separated integers ≥ `min`, `count` of them when given. */
export function intListOption(v: string | undefined, name: string, fallback: number[], min: number, count?: number): number[] {
  if (v === undefined) return fallback;
  const parts = v.split(',');
  const ns = parts.map((p) => (p.trim() === '' ? Number.NaN : Number(p)));
  if (ns.some((n) => !Number.isInteger(n) || n < min) || (count !== undefined && ns.length !== count)) {
    throw new UsageError(`--${name} expects ${count ?? 'comma-separated'} integer${count === 1 ? '' : 's'} ≥ ${min}${count ? ', comma-separated' : ''}, got ${show(v)}`);
  }
  return ns;
}

function parseValue(v: string): unknown {
  if (v === 'true' || v === 'false') return v === 'true';
  if (v !== '' && !Number.isNaN(Number(v))) return Number(v);
  if (v.startsWith('[') || v.startsWith('{')) {
    try {
      return JSON.parse(v);
    } catch (e) {
      throw new UsageError(`--set: '${v}' is not valid JSON (${(e as Error).message})`);
    }
  }
  if (v.includes(',') && v.split(',').every((x) => !Number.isNaN(Number(x)))) return v.split(',').map(Number);
  return v;
}

/** `--set key=value …` as config overrides (numbers, booleans, lists, JSON). */
export function overridesOption(sets: string[] | undefined): Record<string, unknown> {
  const o: Record<string, unknown> = {};
  for (const s of sets ?? []) {
    const i = s.indexOf('=');
    if (i <= 0) throw new UsageError(`--set expects key=value, got '${s}'`);
    o[s.slice(0, i)] = parseValue(s.slice(i + 1));
  }
  return o;
}
