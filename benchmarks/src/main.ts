/**
 * `npm run bench` — cross-backend benchmark of convit_tiny, convit_tiny_deit and convnextv2_atto at 224×224.
 *
 * Every Node backend runs in its own child process (`--worker`), every browser backend in its own Chromium
 * context, one at a time. Results: a terminal table, results/<mode>.json and results/<mode>.md.
 */
import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { cpus, loadavg, tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { allBackends, MODE_DEFAULTS, suiteConfig } from './backends.js';
import { openChromium, type ChromiumSession } from './chromium.js';
import { DEFAULT_MODELS } from './models.js';
import { prepareAssets } from './prepare.js';
import { buildReport, markdown, terminalTable, type RunMeta } from './report.js';
import { peersWorker, runPeers } from './peers.js';
import { runSuite } from './suite.js';
import type { BackendResult, BackendSpec, Mode, ModelResult, SuiteConfig } from './types.js';

/** This run's folder (benchmarks/.cache/run-XXXXXX, made by scripts/run.mjs): the bundles, job and result files. */
const runDir = dirname(fileURLToPath(import.meta.url));
const repoRoot = resolve(process.env.SOFTBIAS_ROOT ?? join(runDir, '..', '..', '..'));
const benchDir = join(repoRoot, 'benchmarks');
/** Shared between runs: the prepared weights and inputs. */
const assetsDir = join(benchDir, '.cache', 'assets');

const USAGE = `npm run bench [-- options]
  --quick            (default) correctness-only backends (cpu, CPU-emulated WebGPU) get one cold batch-1 run;
                     the others 1 warm-up + up to 7 runs; every cell capped at 20 s
  --full             every cell on every backend, 3 warm-ups + up to 20 runs, capped at 180 s
  --backends=a,b     subset of: ${allBackends(cpus().length).map((b) => b.id).join(', ')}
  --models=a,b       default ${DEFAULT_MODELS.join(',')}
  --cap=SECONDS      per-cell time cap
  --part-timeout=S   stop a model's worker (or page) after S seconds, keeping what it measured
                     (default: the larger of 600 and 10 caps + 300)
  --runs=N --warmups=N
  --batches=1,8      inference batch sizes (at most 8: the prepared input holds 8 images)
  --train-batches=2  training-step batch sizes (empty: no training step)
  --no-profile       skip the kernel profiles
  --no-experiments   skip FCMAE sparse-vs-dense and the GPSA cache experiment
  --no-models        only the experiments
  --out=DIR          default benchmarks/results
  --provisional=WHY  mark the results as not final (also automatic when the load average is high at start)
  --peers            softbias against onnxruntime-web (wasm) and onnxruntime-node on the same weights, the SIMD
                     ceiling and kernel families by thread count: results/peers.md|json (--peers --help for its options)`;

interface Args {
  mode: Mode;
  backends?: string[];
  models: string[];
  cap?: number;
  partTimeout?: number;
  runs?: number;
  warmups?: number;
  batches?: number[];
  trainBatches?: number[];
  profile: boolean;
  experiments: boolean;
  runModels: boolean;
  out: string;
  provisional?: string;
}

function batchList(v: string, arg: string): number[] {
  const list = v.split(',').filter(Boolean).map(Number);
  if (list.some((b) => !Number.isInteger(b) || b < 1 || b > 8)) throw new Error(`${arg}: batch sizes must be integers from 1 to 8`);
  return list;
}

/** A numeric option's value: NaN (e.g. `--cap` without `=N`) would silently disable the caps or the runs. */
function numberArg(v: string, arg: string, min: number, integer: boolean): number {
  const n = Number(v);
  if (v.trim() === '' || !Number.isFinite(n) || n < min || (integer && !Number.isInteger(n))) {
    throw new Error(`${arg}: expected ${integer ? 'an integer' : 'a number'} ≥ ${min}`);
  }
  return n;
}

function parseArgs(argv: string[]): Args {
  const a: Args = { mode: 'quick', models: [...DEFAULT_MODELS], profile: true, experiments: true, runModels: true, out: join(benchDir, 'results') };
  for (const arg of argv) {
    const [k, v] = arg.includes('=') ? [arg.slice(0, arg.indexOf('=')), arg.slice(arg.indexOf('=') + 1)] : [arg, ''];
    if (k === '--quick') a.mode = 'quick';
    else if (k === '--full') a.mode = 'full';
    else if (k === '--backends') a.backends = v.split(',').filter(Boolean);
    else if (k === '--models') a.models = v.split(',').filter(Boolean);
    else if (k === '--cap') a.cap = numberArg(v, arg, 0, false) * 1000;
    else if (k === '--part-timeout') a.partTimeout = numberArg(v, arg, 1, false) * 1000;
    else if (k === '--runs') a.runs = numberArg(v, arg, 1, true);
    else if (k === '--warmups') a.warmups = numberArg(v, arg, 0, true);
    else if (k === '--batches') a.batches = batchList(v, arg);
    else if (k === '--train-batches') a.trainBatches = batchList(v, arg);
    else if (k === '--no-profile') a.profile = false;
    else if (k === '--no-experiments') a.experiments = false;
    else if (k === '--no-models') a.runModels = false;
    else if (k === '--out') a.out = resolve(v);
    else if (k === '--provisional') a.provisional = v || 'marked provisional by the caller';
    else if (k === '--help' || k === '-h') {
      console.log(USAGE);
      process.exit(0);
    } else throw new Error(`unknown option ${arg}\n${USAGE}`);
  }
  return a;
}

/** Environment for a child that may start Dawn: SwiftShader's Vulkan driver when no other is configured. */
function childEnv(): NodeJS.ProcessEnv {
  const env = { ...process.env };
  const swiftshader = '/usr/lib/chromium/vk_swiftshader_icd.json';
  if (!env.VK_ICD_FILENAMES && existsSync(swiftshader)) env.VK_ICD_FILENAMES = swiftshader;
  if (!env.XDG_RUNTIME_DIR || !existsSync(env.XDG_RUNTIME_DIR)) env.XDG_RUNTIME_DIR = mkdtempSync(join(tmpdir(), 'xdg-'));
  return env;
}

/** One part of the suite on one Node backend, in a child process (a crash or an out-of-memory stays there). */
async function runNodePart(spec: BackendSpec, cfg: SuiteConfig, assetsDir: string, timeoutMs: number): Promise<BackendResult | { failed: string }> {
  const tag = `${spec.id}-${cfg.runModels ? cfg.models.join('+') : 'experiments'}`;
  const jobFile = join(runDir, `job-${tag}.json`);
  const outFile = join(runDir, `result-${tag}.json`);
  writeFileSync(jobFile, JSON.stringify({ spec, cfg, assetsDir }));
  writeFileSync(outFile, '');
  const child = spawn(process.execPath, ['--enable-source-maps', fileURLToPath(import.meta.url), '--worker', jobFile, outFile], {
    env: childEnv(),
    stdio: ['ignore', 'inherit', 'pipe'],
  });
  let stderrTail = '';
  child.stderr!.on('data', (d: Buffer) => {
    process.stderr.write(d);
    stderrTail = (stderrTail + d.toString()).slice(-4000);
  });
  const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
  const code = await new Promise<number | null>((ok) => child.on('exit', (c) => ok(c)));
  clearTimeout(timer);
  const text = readFileSync(outFile, 'utf8');
  const firstError = stderrTail.split('\n').find((l) => /Error|error:|Aborted|out of memory/i.test(l))?.trim();
  const why =
    code === null
      ? `the worker was killed after ${Math.round(timeoutMs / 1000)} s`
      : `the worker died (exit code ${code})${firstError ? `: ${firstError.slice(0, 300)}` : ''}`;
  if (!text) return { failed: why };
  const r = JSON.parse(text) as BackendResult;
  // A partial result (the worker checkpoints around every cell): keep what it measured, say where it stopped.
  if (code !== 0 || r.running) r.stopped = `${why}${r.running ? ` during "${r.running}"` : ''}`;
  return r;
}

/** The parts one backend runs: one per model (isolated), then the experiments. */
function partsOf(cfg: SuiteConfig): Partial<SuiteConfig>[] {
  const parts: Partial<SuiteConfig>[] = cfg.runModels ? cfg.models.map((m) => ({ models: [m], runModels: true, experiments: false })) : [];
  if (cfg.experiments) parts.push({ runModels: false, experiments: true });
  return parts;
}

/** Run every part of one backend and merge them; a backend whose setup fails is absent after its first part. */
async function runBackend(
  spec: BackendSpec,
  cfg: SuiteConfig,
  runPart: (cfg: SuiteConfig) => Promise<BackendResult | { failed: string }>,
): Promise<BackendResult> {
  const merged: BackendResult = {
    spec,
    available: false,
    reason: '',
    mode: cfg.mode,
    correctnessOnly: cfg.correctnessOnly,
    environment: {},
    models: [],
    experiments: [],
    wallMs: 0,
  };
  let firstFailure: string | undefined;
  for (const p of partsOf(cfg)) {
    // Built when it runs: a correctness-only status found by an earlier part applies.
    const part: SuiteConfig = { ...cfg, ...p };
    // Quick mode runs no experiments on a correctness-only backend: do not even start a worker for them.
    if (!part.runModels && part.mode === 'quick' && merged.correctnessOnly) continue;
    const r = await runPart(part);
    if ('failed' in r) {
      firstFailure ??= r.failed;
      if (part.runModels) for (const m of part.models) merged.models.push(failedModel(m, r.failed));
      else merged.experiments.push({ name: 'experiments', description: '', rows: [], error: r.failed });
      continue;
    }
    if (!r.available) {
      // Setup failed: the backend is absent (every part would fail the same way).
      if (!merged.available) {
        merged.reason = r.reason;
        merged.models = [];
        merged.experiments = [];
        return merged;
      }
      continue;
    }
    if (!merged.available) {
      merged.available = true;
      merged.reason = r.reason;
      merged.environment = r.environment;
    }
    if (r.stopped) {
      // The part stopped early: its unfinished model (or experiment) records why.
      const last = r.models[r.models.length - 1];
      if (part.runModels && last) last.error = last.error ? `${last.error}; ${r.stopped}` : r.stopped;
      else if (!part.runModels) r.experiments.push({ name: 'experiments', description: '', rows: [], error: r.stopped });
      for (const m of part.models) if (part.runModels && !r.models.some((x) => x.model === m)) r.models.push(failedModel(m, r.stopped));
    }
    merged.correctnessOnly ||= r.correctnessOnly;
    // A correctness-only backend found at setup (CPU-emulated WebGPU) keeps that status for its later parts.
    cfg.correctnessOnly = merged.correctnessOnly;
    merged.models.push(...r.models);
    merged.experiments.push(...r.experiments);
    merged.wallMs += r.wallMs;
  }
  if (!merged.available) {
    merged.reason = firstFailure ?? 'nothing ran';
    merged.models = [];
    merged.experiments = [];
  }
  return merged;
}

function failedModel(model: string, why: string): ModelResult {
  return { model, params: 0, inference: {}, train: {}, memory: {}, profiles: [], error: why };
}

async function worker(jobFile: string, outFile: string): Promise<void> {
  const { spec, cfg, assetsDir } = JSON.parse(readFileSync(jobFile, 'utf8')) as { spec: BackendSpec; cfg: SuiteConfig; assetsDir: string };
  const { readFile } = await import('node:fs/promises');
  const write = (r: BackendResult): void => {
    writeFileSync(`${outFile}.tmp`, JSON.stringify(r));
    renameSync(`${outFile}.tmp`, outFile);
  };
  const result = await runSuite(
    {
      readAsset: async (name) => new Uint8Array(await readFile(join(assetsDir, name))),
      log: (line) => console.log(`  ${line}`),
      checkpoint: write,
      environment: { runtime: 'node', node: process.version, cpus: cpus().length, cpuModel: cpus()[0]?.model ?? '' },
    },
    spec,
    cfg,
  );
  write(result);
  // Dawn keeps handles open: leave explicitly.
  process.exit(0);
}

async function main(): Promise<void> {
  const argv = process.argv.slice(2);
  if (argv[0] === '--worker') return worker(argv[1]!, argv[2]!);
  if (argv[0] === '--peers-worker') return peersWorker(argv[1]!, argv[2]!);
  if (argv.includes('--peers')) return runPeers(argv, { bundle: fileURLToPath(import.meta.url), runDir, defaultOut: join(benchDir, 'results') });
  const args = parseArgs(argv);
  const d = { ...MODE_DEFAULTS[args.mode] };
  if (args.cap !== undefined) d.cellCapMs = args.cap;
  if (args.runs !== undefined) d.runs = args.runs;
  if (args.warmups !== undefined) d.warmups = args.warmups;
  if (args.batches !== undefined) d.batches = args.batches.length ? args.batches : [1];
  if (args.trainBatches !== undefined) d.trainBatches = args.trainBatches;
  const known = allBackends(cpus().length);
  for (const id of args.backends ?? []) if (!known.some((b) => b.id === id)) throw new Error(`unknown backend '${id}'\n${USAGE}`);
  const specs = args.backends ? known.filter((b) => args.backends!.includes(b.id)) : known;
  const load0 = loadavg();
  let provisional = args.provisional;
  if (!provisional && load0[0]! > 0.5 * cpus().length) {
    provisional = `the load average was ${load0[0]!.toFixed(2)} on ${cpus().length} cores when the run started: other work shared the machine`;
  }

  console.log(`softbias bench --${args.mode}: preparing weights and inputs for ${args.models.join(', ')}`);
  const prepared = await prepareAssets({ models: args.models, fixturesDir: join(repoRoot, 'fixtures'), assetsDir, batch: 8, imgSize: 224 });

  // One part (a model, or the experiments) may take its cells × cap plus setup; kill it beyond that.
  const partTimeout = args.partTimeout ?? Math.max(10 * 60_000, 10 * d.cellCapMs + 5 * 60_000);
  const results: BackendResult[] = [];
  let chromium: ChromiumSession | { unavailable: string } | undefined;
  for (const spec of specs) {
    const cfg = suiteConfig(spec, args.mode, args.models, d, args.profile);
    // The experiments repeat per runtime what Node's backends show: in quick mode, Node only.
    cfg.experiments = args.experiments && (args.mode === 'full' || spec.runtime === 'node');
    cfg.runModels = args.runModels;
    console.log(`── ${spec.label}`);
    let r: BackendResult;
    if (spec.runtime === 'chromium') {
      chromium ??= await openChromium({ webDir: join(runDir, 'web'), wasmDir: join(runDir, 'web', 'wasm'), assetsDir, log: (l) => console.log(l) });
      const session = chromium;
      r =
        'unavailable' in session
          ? await runBackend(spec, cfg, async () => ({ failed: session.unavailable }))
          : await runBackend(spec, cfg, (part) => session.run(spec, part, partTimeout));
    } else {
      r = await runBackend(spec, cfg, (part) => runNodePart(spec, part, assetsDir, partTimeout));
    }
    if (!r.available) console.log(`  absent: ${r.reason.split('\n')[0]}`);
    results.push(r);
  }
  if (chromium && !('unavailable' in chromium)) await chromium.close();

  const meta: RunMeta = {
    mode: args.mode,
    date: new Date().toISOString(),
    command: `npm run bench -- ${argv.join(' ')}`.trim(),
    machine: `${cpus().length}× ${cpus()[0]?.model ?? 'unknown CPU'}`,
    node: process.version,
    loadAverage: { start: load0, end: loadavg() },
    prepared,
  };
  if (provisional) meta.provisional = provisional;
  const report = buildReport(meta, results);
  mkdirSync(args.out, { recursive: true });
  // The logits served the agreement table; the file keeps their top 5 (index, logit), not all of them.
  const stored = {
    ...report,
    meta: { ...report.meta, prepared: report.meta.prepared.map(({ referenceLogits, ...p }) => ({ ...p, hasReferenceLogits: !!referenceLogits })) },
    backends: report.backends.map((b) => ({
      ...b,
      models: b.models.map(({ logits, ...m }) => ({
        ...m,
        ...(logits ? { top5: [...logits.keys()].sort((i, j) => logits[j]! - logits[i]!).slice(0, 5).map((i) => [i, logits[i]!]) } : {}),
      })),
    })),
  };
  // Indented, but arrays of numbers (samples, shapes) on one line each.
  const json = JSON.stringify(stored, null, 1).replace(/\[\s+(-?[\d.e+-]+(?:,\s+-?[\d.e+-]+)*)\s+\]/g, (_, nums: string) => `[${nums.replace(/\s+/g, '')}]`);
  writeFileSync(join(args.out, `${args.mode}.json`), json + '\n');
  writeFileSync(join(args.out, `${args.mode}.md`), markdown(report));
  console.log(terminalTable(report));
  console.log(`\nwrote ${join(args.out, `${args.mode}.json`)} and ${join(args.out, `${args.mode}.md`)}`);
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
