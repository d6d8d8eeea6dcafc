/**
 * `npm run bench -- --peers`: softbias' default wasm path against onnxruntime-web's WebAssembly build (in Node)
 * and onnxruntime-node (native), on the same weights, per model × batch × threads; the machine's 128-bit SIMD
 * ceiling (./peak) and each cell's share of it; softbias' kernel families at 1 and 2 threads.
 *
 * Every (engine, model, batch, threads) runs in its own child process (`--peers-worker`: tfjs fixes its wasm
 * threads per process, and a crash costs one cell), in rounds: each round runs every cell's engines one after
 * the other, the engines' order rotating between cells and rounds. Medians over the timed runs of every round.
 * The files come from one option, `--onnx-dir` (default /tmp/peers-onnx): `<name>.onnx` (NHWC input
 * [batch,224,224,3]) and `<name>.safetensors` (the same weights, timm keys), written by `--export-onnx` (the
 * project's own exporter, @softbias/onnx, on the bench's weights: `createModel(name)`, seed 0) or by
 * `../shared/peers/run.sh --setup-only` (PyTorch's exporter).
 */
import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, readdirSync, statSync, writeFileSync } from 'node:fs';
import { cpus, loadavg } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import * as tf from '@tensorflow/tfjs-core';
import { setupBackend } from '@softbias/tensor-ops';
import { convitMacs, convnextv2Macs } from '@softbias/metrics';
import { createBenchModel, DEFAULT_MODELS, family } from './models.js';
import { familiesMarkdown, kernelFamilies, type KernelFamilyRow } from './families.js';
import { measure, now, profileCall } from './measure.js';
import { simdPeak, type PeakResult } from './peak/probe.js';
import { argmax, fmtExp, fmtMs, fmtRate, maxAbs, maxAbsDiff, median } from './stats.js';
import type { KernelProfile, Timing } from './types.js';

export const ENGINES = ['softbias', 'ortweb', 'ortnode'] as const;
export type Engine = (typeof ENGINES)[number];
const ENGINE_LABEL: Record<Engine, string> = {
  softbias: 'softbias (tfjs wasm)',
  ortweb: 'onnxruntime-web (wasm)',
  ortnode: 'onnxruntime-node (native)',
};

/** softbias model name → the peers' file name (the peers call the DeiT twin `deit_tiny_twin`). */
export const ONNX_NAME: Record<string, string> = {
  convit_tiny: 'convit_tiny',
  convit_tiny_deit: 'deit_tiny_twin',
  convnextv2_atto: 'convnextv2_atto',
};

const SETUP_HINT = 'pass --export-onnx (softbias writes them) or run `../shared/peers/run.sh --setup-only` from the repository root first (see ../shared/peers/README.md; it writes /tmp/peers-onnx)';

export const PEERS_USAGE = `npm run bench -- --peers [options]   (options take "--k=v" or "--k v")
  --models a,b        default ${DEFAULT_MODELS.join(',')}
  --batches 1,8       default 1,8
  --threads 1,2       default 1,2 (wasm threads for softbias and onnxruntime-web, intra-op threads for onnxruntime-node)
  --engines a,b       default ${ENGINES.join(',')}
  --rounds N          default 2 (every cell's engines once per round, interleaved)
  --runs N            timed runs per process (default 10)   --warmups N   default 3 (the first call included)
  --cap SECONDS       no new timed run starts after this long in one process (default 120)
  --onnx-dir DIR      <name>.onnx + <name>.safetensors (default /tmp/peers-onnx; ${SETUP_HINT.replace('run ', 'written by ').replace(' from the repository root first', '')})
  --export-onnx       first write <name>.onnx + <name>.safetensors into --onnx-dir with @softbias/onnx (the bench's weights)
  --no-profile        skip softbias' kernel profile (kernel families at each thread count)
  --no-peak           skip the SIMD peak probe (no % of ceiling)
  --out DIR           default benchmarks/results (writes peers.json and peers.md)
  --provisional=WHY   mark the results as not final (also automatic when the load average is high at start)`;

export interface PeersArgs {
  models: string[];
  batches: number[];
  threads: number[];
  engines: Engine[];
  rounds: number;
  runs: number;
  warmups: number;
  capMs: number;
  onnxDir: string;
  exportOnnx: boolean;
  profile: boolean;
  peak: boolean;
  out: string;
  provisional?: string;
}

function intList(v: string, arg: string, min: number, max: number): number[] {
  const l = v.split(',').filter(Boolean).map(Number);
  if (!l.length || l.some((x) => !Number.isInteger(x) || x < min || x > max)) throw new Error(`${arg}: expected integers from ${min} to ${max}, comma-separated`);
  return [...new Set(l)];
}

export function parsePeersArgs(argv: string[], defaultOut: string): PeersArgs {
  const a: PeersArgs = {
    models: [...DEFAULT_MODELS],
    batches: [1, 8],
    threads: [1, 2],
    engines: [...ENGINES],
    rounds: 2,
    runs: 10,
    warmups: 3,
    capMs: 120_000,
    onnxDir: '/tmp/peers-onnx',
    exportOnnx: false,
    profile: true,
    peak: true,
    out: defaultOut,
  };
  const flags = new Set(['--peers', '--export-onnx', '--no-profile', '--no-peak', '--help', '-h']);
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    let k = arg;
    let v: string | undefined;
    if (arg.includes('=')) [k, v] = [arg.slice(0, arg.indexOf('=')), arg.slice(arg.indexOf('=') + 1)];
    else if (!flags.has(arg) && k !== '--provisional') {
      v = argv[++i];
      if (v === undefined) throw new Error(`${arg} needs a value\n${PEERS_USAGE}`);
    }
    const num = (min: number): number => {
      const n = Number(v);
      if (v === undefined || v.trim() === '' || !Number.isInteger(n) || n < min) throw new Error(`${k}: expected an integer ≥ ${min}`);
      return n;
    };
    if (k === '--peers') continue;
    else if (k === '--models') {
      a.models = v!.split(',').filter(Boolean);
      for (const m of a.models) if (!ONNX_NAME[m]) throw new Error(`--models: unknown model '${m}' (${Object.keys(ONNX_NAME).join(', ')})`);
    } else if (k === '--batches') a.batches = intList(v!, k, 1, 64);
    else if (k === '--threads') a.threads = intList(v!, k, 1, 8);
    else if (k === '--engines') {
      a.engines = v!.split(',').filter(Boolean) as Engine[];
      for (const e of a.engines) if (!ENGINES.includes(e)) throw new Error(`--engines: unknown engine '${e}' (${ENGINES.join(', ')})`);
    } else if (k === '--rounds') a.rounds = num(1);
    else if (k === '--runs') a.runs = num(1);
    else if (k === '--warmups') a.warmups = num(1);
    else if (k === '--cap') a.capMs = num(1) * 1000;
    else if (k === '--onnx-dir') a.onnxDir = resolve(v!);
    else if (k === '--export-onnx') a.exportOnnx = true;
    else if (k === '--no-profile') a.profile = false;
    else if (k === '--no-peak') a.peak = false;
    else if (k === '--out') a.out = resolve(v!);
    else if (k === '--provisional') a.provisional = v || 'marked provisional by the caller';
    else if (k === '--help' || k === '-h') {
      console.log(PEERS_USAGE);
      process.exit(0);
    } else throw new Error(`unknown option ${arg} for --peers\n${PEERS_USAGE}`);
  }
  return a;
}

/**
 * `--export-onnx`: the bench models with the weights the bench builds (`createModel(name)`, seed 0), written by
 * softbias itself: `<dir>/<name>.safetensors` (what softbias loads) and `<dir>/<name>.onnx` (@softbias/onnx:
 * opset 17, dynamic batch, NHWC `input`, `logits`).
 */
export async function exportPeerFiles(onnxDir: string, models: string[]): Promise<void> {
  // A non-literal specifier: the bundle still takes packages/onnx/src, and benchmarks' typecheck needs no build of it.
  const { writeOnnx } = (await import('@softbias/onnx' as string)) as {
    writeOnnx(model: unknown, path: string, opts?: { opset?: number }): Promise<{ modelBytes: number; dataBytes: number }>;
  };
  await setupBackend('cpu');
  mkdirSync(onnxDir, { recursive: true });
  for (const m of models) {
    const base = join(onnxDir, ONNX_NAME[m]!);
    const model = createBenchModel(m);
    try {
      await model.saveWeights(`${base}.safetensors`);
      const r = await writeOnnx(model, `${base}.onnx`, { opset: 17 });
      console.log(`  --export-onnx: ${m} → ${base}.onnx (${(r.modelBytes / 2 ** 20).toFixed(1)} MiB) + ${base}.safetensors`);
    } finally {
      model.dispose();
    }
  }
}

/** The files of every model, or an error that says how to make them. */
export function peerFiles(onnxDir: string, models: string[]): Record<string, { onnx: string; safetensors: string }> {
  const out: Record<string, { onnx: string; safetensors: string }> = {};
  const missing: string[] = [];
  for (const m of models) {
    const base = join(onnxDir, ONNX_NAME[m]!);
    out[m] = { onnx: `${base}.onnx`, safetensors: `${base}.safetensors` };
    for (const f of Object.values(out[m]!)) if (!existsSync(f)) missing.push(f);
  }
  if (missing.length) {
    throw new Error(`--peers: missing ${missing.join(', ')}.\nThe peers' ONNX files and the safetensors they were exported from are not there: ${SETUP_HINT}, or pass --onnx-dir DIR.`);
  }
  return out;
}

// ───────────────────────────── the child process: one engine, one model, one batch, one thread count ─────────────

interface PeerJob {
  engine: Engine;
  model: string;
  batch: number;
  threads: number;
  runs: number;
  warmups: number;
  capMs: number;
  onnx: string;
  safetensors: string;
  /** Return the batch's logits (first round only). */
  wantLogits: boolean;
  /** softbias: profile one forward after the timed runs. */
  profile: boolean;
}

interface PeerRun {
  ok: boolean;
  error?: string;
  firstMs?: number;
  loadMs?: number;
  timing?: Timing;
  logits?: number[];
  /** What the engine says about itself: versions, threads, the wasm file it loaded, … */
  info: Record<string, string | number | boolean>;
  /** softbias: floating-point operations per image (2 × the analytic MAC count). */
  flopsPerImage?: number;
  profile?: KernelProfile;
  peakRssMiB?: number;
}

/** Standard-normal input, the same in every engine's process (and as ../shared/peers' randn(seed 1234)). */
export function peerInput(n: number, seed = 1234): Float32Array {
  const out = new Float32Array(n);
  let s = seed >>> 0;
  const u = (): number => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return (s + 0.5) / 4294967296;
  };
  for (let i = 0; i < n; i += 2) {
    const r = Math.sqrt(-2 * Math.log(u()));
    const t = 2 * Math.PI * u();
    out[i] = r * Math.cos(t);
    if (i + 1 < n) out[i + 1] = r * Math.sin(t);
  }
  return out;
}

const IMG = 224;

/** First call (timed alone, keeps the output), then the warm-ups left and the timed runs. */
async function timeEngine(job: PeerJob, run: () => Promise<Float32Array>, r: PeerRun): Promise<void> {
  const t0 = now();
  const y = await run();
  r.firstMs = now() - t0;
  if (job.wantLogits) r.logits = Array.from(y, (v) => Number(v.toPrecision(9)));
  r.timing = await measure(
    async () => {
      await run();
    },
    { warmups: job.warmups - 1, runs: job.runs, capMs: job.capMs, batch: job.batch },
  );
}

/** The installed package's folder, found as Node would (upwards from here); its exports map may hide package.json. */
function packageDir(name: string): string | undefined {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (;;) {
    const d = join(dir, 'node_modules', name);
    if (existsSync(join(d, 'package.json'))) return d;
    const up = dirname(dir);
    if (up === dir) return undefined;
    dir = up;
  }
}

function packageVersion(name: string): string {
  const d = packageDir(name);
  return d ? (JSON.parse(readFileSync(join(d, 'package.json'), 'utf8')) as { version: string }).version : 'unknown';
}

async function softbiasRun(job: PeerJob, r: PeerRun): Promise<void> {
  const info = await setupBackend('wasm', { threads: job.threads });
  Object.assign(r.info, { tfjs: tf.version_core, backend: tf.getBackend(), threads: info.threads ?? job.threads, setup: info.reason });
  const tLoad = now();
  const model = createBenchModel(job.model);
  await model.loadWeights(new Uint8Array(readFileSync(job.safetensors)));
  model.eval();
  r.loadMs = now() - tLoad;
  // FLOPs per image = 2 × MACs of the layers (@softbias/metrics' analytic count: linears, convolutions, the
  // attention matmuls). GPSA's positional projection is left out: in eval mode it does not depend on the input
  // (softbias caches it, onnxruntime constant-folds it).
  const cfg = (model as unknown as { config: Record<string, unknown> }).config;
  const macs =
    family(job.model) === 'convit'
      ? convitMacs({ ...(cfg as unknown as Parameters<typeof convitMacs>[0]), countPositional: false }).total
      : convnextv2Macs({ ...(cfg as unknown as Parameters<typeof convnextv2Macs>[0]), imgSize: IMG }).total;
  r.flopsPerImage = 2 * macs;
  const x = tf.tensor(peerInput(job.batch * IMG * IMG * 3), [job.batch, IMG, IMG, 3], 'float32');
  try {
    const run = async (): Promise<Float32Array> => {
      const y = model.forward(x);
      const d = (await y.data()) as Float32Array;
      y.dispose();
      return d;
    };
    await timeEngine(job, run, r);
    if (job.profile) {
      const p = await profileCall(`forward, batch ${job.batch}, ${job.threads} thread${job.threads > 1 ? 's' : ''}`, async () => {
        await run();
      });
      r.profile = p.profile;
    }
  } finally {
    x.dispose();
    model.dispose();
  }
}

type OrtLike = typeof import('onnxruntime-web');

/** Feeds and output of an onnxruntime session (both packages share onnxruntime-common's API). */
async function ortTimed(ort: OrtLike, sess: import('onnxruntime-web').InferenceSession, job: PeerJob, r: PeerRun): Promise<void> {
  const input = sess.inputNames[0]!;
  const output = sess.outputNames[0]!;
  const feeds = { [input]: new ort.Tensor('float32', peerInput(job.batch * IMG * IMG * 3), [job.batch, IMG, IMG, 3]) };
  const run = async (): Promise<Float32Array> => {
    const out = await sess.run(feeds);
    const y = out[output]!;
    const d = y.data as Float32Array;
    for (const t of Object.values(out)) t.dispose?.();
    return d;
  };
  await timeEngine(job, run, r);
}

async function ortWebRun(job: PeerJob, r: PeerRun): Promise<void> {
  // Which .wasm it instantiates (matched by size against the package's dist/), and whether its memory is shared
  // (the threaded build: its pthreads are worker_threads in Node).
  const loaded: { bytes: number; sharedMemory: boolean }[] = [];
  const instantiate = WebAssembly.instantiate.bind(WebAssembly);
  (WebAssembly as { instantiate: unknown }).instantiate = (src: unknown, imports?: WebAssembly.Imports) => {
    if (src instanceof ArrayBuffer || ArrayBuffer.isView(src)) {
      let shared = false;
      for (const ns of Object.values(imports ?? {})) {
        for (const v of Object.values(ns as Record<string, unknown>)) if (v instanceof WebAssembly.Memory && v.buffer instanceof SharedArrayBuffer) shared = true;
      }
      loaded.push({ bytes: (src as ArrayBufferView | ArrayBuffer).byteLength, sharedMemory: shared });
    }
    return instantiate(src as BufferSource, imports);
  };
  const ort = (await import('onnxruntime-web')) as OrtLike;
  ort.env.wasm.numThreads = job.threads;
  // 1.30 ships SIMD builds only (the `simd` flag is gone); set where an older version still reads it.
  (ort.env.wasm as { simd?: boolean }).simd = true;
  const tLoad = now();
  const sess = await ort.InferenceSession.create(new Uint8Array(readFileSync(job.onnx)), {
    executionProviders: ['wasm'],
    graphOptimizationLevel: 'all',
    executionMode: 'sequential',
  });
  r.loadMs = now() - tLoad;
  (WebAssembly as { instantiate: unknown }).instantiate = instantiate;
  const dist = join(packageDir('onnxruntime-web')!, 'dist');
  const sizes = new Map(readdirSync(dist).filter((f) => f.endsWith('.wasm')).map((f) => [statSync(join(dist, f)).size, f]));
  const files = loaded.map((l) => `${sizes.get(l.bytes) ?? `unknown ${l.bytes}-byte module`}${l.sharedMemory ? ' (shared memory: threaded)' : ''}`);
  Object.assign(r.info, {
    version: packageVersion('onnxruntime-web'),
    wasm: files.join(', ') || 'none seen',
    flags: JSON.stringify(ort.env.wasm),
    numThreads: job.threads,
    graphOptimizationLevel: 'all',
  });
  try {
    await ortTimed(ort, sess, job, r);
  } finally {
    await sess.release();
  }
}

async function ortNodeRun(job: PeerJob, r: PeerRun): Promise<void> {
  const ort = (await import('onnxruntime-node')) as unknown as OrtLike;
  const tLoad = now();
  const sess = await ort.InferenceSession.create(job.onnx, {
    executionProviders: ['cpu'],
    intraOpNumThreads: job.threads,
    interOpNumThreads: 1,
    graphOptimizationLevel: 'all',
    executionMode: 'sequential',
  });
  r.loadMs = now() - tLoad;
  Object.assign(r.info, { version: packageVersion('onnxruntime-node'), intraOpNumThreads: job.threads, executionProvider: 'cpu' });
  try {
    await ortTimed(ort, sess as import('onnxruntime-web').InferenceSession, job, r);
  } finally {
    await sess.release();
  }
}

export async function peersWorker(jobFile: string, outFile: string): Promise<void> {
  const job = JSON.parse(readFileSync(jobFile, 'utf8')) as PeerJob;
  const r: PeerRun = { ok: false, info: { node: process.version } };
  try {
    if (job.engine === 'softbias') await softbiasRun(job, r);
    else if (job.engine === 'ortweb') await ortWebRun(job, r);
    else await ortNodeRun(job, r);
    r.ok = true;
  } catch (e) {
    r.error = `${(e as Error).name ?? 'Error'}: ${(e as Error).message ?? String(e)}`.split('\n')[0];
  }
  r.peakRssMiB = Math.round(process.resourceUsage().maxRSS / 102.4) / 10;
  writeFileSync(outFile, JSON.stringify(r));
  // onnxruntime-web's pthreads and tfjs' workers keep the process alive: leave explicitly.
  process.exit(0);
}

// ───────────────────────────── the parent: rounds of child processes, the probe, the report ─────────────────────

/** % of all CPU time used by anything during `ms` (Linux /proc/stat; undefined elsewhere). */
async function cpuBusyPct(ms: number): Promise<number | undefined> {
  const read = (): number[] | undefined => {
    try {
      return readFileSync('/proc/stat', 'utf8').split('\n')[0]!.trim().split(/\s+/).slice(1, 9).map(Number);
    } catch {
      return undefined;
    }
  };
  const a = read();
  await new Promise((ok) => setTimeout(ok, ms));
  const b = read();
  if (!a || !b) return undefined;
  const d = b.map((x, i) => x - a[i]!);
  const total = d.reduce((s, x) => s + x, 0);
  const idle = d[3]! + d[4]!;
  return total > 0 ? Math.round((100 * (total - idle)) / total) : undefined;
}

export interface EngineCell {
  engine: Engine;
  ok: boolean;
  errors: string[];
  /** Every timed run of every round, ms. */
  samplesMs: number[];
  /** Median of each round's runs. */
  roundMedians: number[];
  medianMs?: number;
  imgPerSec?: number;
  firstMs?: number;
  loadMs?: number;
  peakRssMiB?: number;
  /** Busy % of the CPUs (anything) in the 0.25 s before each of this engine's processes. */
  cpuBusyPct: (number | undefined)[];
  /** GFLOP/s at the median and its share of the SIMD ceiling at these threads (wasm engines). */
  gflops?: number;
  pctOfCeiling?: number;
  info: Record<string, string | number | boolean>;
}

export interface PeerCell {
  model: string;
  batch: number;
  threads: number;
  engines: Partial<Record<Engine, EngineCell>>;
  /** softbias img/s ÷ onnxruntime-web img/s. */
  ratioVsOrtWeb?: number;
  /** max |softbias − onnxruntime| over the batch's logits, and relative to max |logit|. */
  agreement: { against: Engine; maxAbsDiff: number; relative: number; top1Same: boolean }[];
}

export interface PeersReport {
  meta: {
    command: string;
    date: string;
    machine: string;
    cpuModel: string;
    cores: number;
    node: string;
    versions: Record<string, string>;
    onnxDir: string;
    files: Record<string, { onnx: string; safetensors: string; onnxBytes: number; modified: string }>;
    rounds: number;
    runs: number;
    warmups: number;
    input: string;
    loadAverage: { start: number[]; end?: number[] };
    provisional?: string;
    wallSeconds?: number;
  };
  /** The SIMD ceiling per thread count (the better of the probes before and after the cells). */
  ceiling: Record<number, PeakResult & { before?: number; after?: number }>;
  flopsPerImage: Record<string, number>;
  cells: PeerCell[];
  /** Per model × batch: softbias' kernel families at each thread count. */
  kernelFamilies: { model: string; batch: number; totalMs: Record<number, number>; rows: KernelFamilyRow[] }[];
}

async function runChild(bundle: string, runDir: string, job: PeerJob, timeoutMs: number): Promise<PeerRun> {
  const tag = `${job.engine}-${job.model}-b${job.batch}-t${job.threads}-${Math.random().toString(36).slice(2, 8)}`;
  const jobFile = join(runDir, `peer-job-${tag}.json`);
  const outFile = join(runDir, `peer-result-${tag}.json`);
  writeFileSync(jobFile, JSON.stringify(job));
  writeFileSync(outFile, '');
  const child = spawn(process.execPath, ['--enable-source-maps', bundle, '--peers-worker', jobFile, outFile], { stdio: ['ignore', 'inherit', 'pipe'] });
  let tail = '';
  child.stderr!.on('data', (d: Buffer) => {
    tail = (tail + d.toString()).slice(-4000);
  });
  const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
  const code = await new Promise<number | null>((ok) => child.on('exit', (c) => ok(c)));
  clearTimeout(timer);
  const text = readFileSync(outFile, 'utf8');
  if (text) return JSON.parse(text) as PeerRun;
  const firstError = tail.split('\n').find((l) => /Error|error:|Aborted|out of memory/i.test(l))?.trim();
  return {
    ok: false,
    error: code === null ? `killed after ${Math.round(timeoutMs / 1000)} s` : `the process died (exit code ${code})${firstError ? `: ${firstError.slice(0, 300)}` : ''}`,
    info: {},
  };
}

export async function runPeers(argv: string[], ctx: { bundle: string; runDir: string; defaultOut: string }): Promise<void> {
  const args = parsePeersArgs(argv, ctx.defaultOut);
  if (args.exportOnnx) await exportPeerFiles(args.onnxDir, args.models);
  const files = peerFiles(args.onnxDir, args.models);
  for (const e of args.engines.filter((x) => x !== 'softbias')) {
    const pkg = e === 'ortweb' ? 'onnxruntime-web' : 'onnxruntime-node';
    if (packageVersion(pkg) === 'unknown') throw new Error(`--peers: ${pkg} is not installed (a devDependency of benchmarks/: run npm ci at the root)`);
  }
  const t0 = now();
  const load0 = loadavg();
  let provisional = args.provisional;
  if (!provisional && load0[0]! > 0.5 * cpus().length) {
    provisional = `the load average was ${load0[0]!.toFixed(2)} on ${cpus().length} cores when the run started: other work shared the machine`;
  }
  const cpuModel = cpus()[0]?.model ?? 'unknown CPU';
  console.log(
    `softbias bench --peers: ${args.models.join(', ')} × batch ${args.batches.join(',')} × threads ${args.threads.join(',')}; ` +
      `${args.engines.join(', ')}; ${args.rounds} round(s) of ${args.warmups} warm-ups + ${args.runs} runs; files from ${args.onnxDir}`,
  );

  const ceiling: PeersReport['ceiling'] = {};
  const probe = async (when: 'before' | 'after'): Promise<void> => {
    for (const t of args.threads) {
      const p = await simdPeak(t);
      const prev = ceiling[t];
      const keep = !prev || p.gflops > prev.gflops ? { ...p } : prev;
      ceiling[t] = { ...keep, before: when === 'before' ? p.gflops : prev?.before, after: when === 'after' ? p.gflops : prev?.after };
      console.log(`  SIMD peak probe (${when}), ${t} thread${t > 1 ? 's' : ''}: ${p.gflops.toFixed(1)} GFLOP/s (${p.best}; ${p.variants.map((v) => `${v.style}×${v.chains} ${v.gflops.toFixed(1)}`).join(', ')})`);
    }
  };
  if (args.peak) await probe('before');

  const cells: PeerCell[] = [];
  for (const model of args.models) for (const batch of args.batches) for (const threads of args.threads) cells.push({ model, batch, threads, engines: {}, agreement: [] });
  const logits = new Map<string, number[]>();
  const profiles = new Map<string, Map<number, KernelProfile>>();
  const flopsPerImage: Record<string, number> = {};
  const timeoutMs = Math.max(10 * 60_000, 2 * args.capMs + 5 * 60_000);
  let k = 0;
  for (let round = 0; round < args.rounds; round++) {
    console.log(`── round ${round + 1} of ${args.rounds}`);
    for (const cell of cells) {
      const order = args.engines.map((_, i) => args.engines[(i + round + k) % args.engines.length]!);
      k++;
      for (const engine of order) {
        const busy = await cpuBusyPct(250);
        const job: PeerJob = {
          engine,
          model: cell.model,
          batch: cell.batch,
          threads: cell.threads,
          runs: args.runs,
          warmups: args.warmups,
          capMs: args.capMs,
          ...files[cell.model]!,
          wantLogits: round === 0,
          profile: engine === 'softbias' && round === 0 && args.profile,
        };
        const r = await runChild(ctx.bundle, ctx.runDir, job, timeoutMs);
        cell.engines[engine] ??= { engine, ok: true, errors: [], samplesMs: [], roundMedians: [], cpuBusyPct: [], info: {} };
        const e = cell.engines[engine]!;
        e.cpuBusyPct.push(busy);
        const where = `${engine} ${cell.model} b${cell.batch} t${cell.threads}`;
        if (!r.ok || !r.timing) {
          e.ok = false;
          e.errors.push(r.error ?? 'no timing');
          console.log(`  ${where}: ERROR ${r.error}`);
          continue;
        }
        e.samplesMs.push(...r.timing.samplesMs);
        e.roundMedians.push(r.timing.medianMs);
        if (round === 0) Object.assign(e, { firstMs: r.firstMs, loadMs: r.loadMs, info: r.info });
        e.peakRssMiB = Math.max(e.peakRssMiB ?? 0, r.peakRssMiB ?? 0);
        if (r.logits) logits.set(`${where}`, r.logits);
        if (r.flopsPerImage) flopsPerImage[cell.model] = r.flopsPerImage;
        if (r.profile) {
          const key = `${cell.model} b${cell.batch}`;
          if (!profiles.has(key)) profiles.set(key, new Map());
          profiles.get(key)!.set(cell.threads, r.profile);
        }
        console.log(
          `  ${where}: ${fmtRate((cell.batch * 1000) / r.timing.medianMs)} img/s (median ${fmtMs(r.timing.medianMs)} of ${r.timing.samplesMs.length}; first ${fmtMs(r.firstMs ?? NaN)})` +
            (busy !== undefined && busy > 15 ? `  [CPUs ${busy}% busy before it]` : ''),
        );
      }
    }
  }
  if (args.peak) await probe('after');

  for (const cell of cells) {
    for (const e of Object.values(cell.engines)) {
      if (!e || !e.samplesMs.length) continue;
      e.medianMs = median(e.samplesMs);
      e.imgPerSec = (cell.batch * 1000) / e.medianMs;
      const f = flopsPerImage[cell.model];
      if (f && e.engine !== 'ortnode') {
        e.gflops = (f * e.imgPerSec) / 1e9;
        const c = ceiling[cell.threads];
        if (c) e.pctOfCeiling = (100 * e.gflops) / c.gflops;
      }
    }
    const sb = cell.engines.softbias;
    const ow = cell.engines.ortweb;
    if (sb?.imgPerSec && ow?.imgPerSec) cell.ratioVsOrtWeb = sb.imgPerSec / ow.imgPerSec;
    const ref = logits.get(`softbias ${cell.model} b${cell.batch} t${cell.threads}`);
    for (const against of ['ortweb', 'ortnode'] as const) {
      const o = logits.get(`${against} ${cell.model} b${cell.batch} t${cell.threads}`);
      if (!ref || !o || o.length !== ref.length) continue;
      const top1Same = Array.from({ length: cell.batch }, (_, i) => i).every((i) => {
        const n = ref.length / cell.batch;
        return argmax(ref.slice(i * n, (i + 1) * n)) === argmax(o.slice(i * n, (i + 1) * n));
      });
      const d = maxAbsDiff(ref, o);
      cell.agreement.push({ against, maxAbsDiff: d, relative: d / Math.max(maxAbs(o), 1e-30), top1Same });
    }
  }
  const kf: PeersReport['kernelFamilies'] = [];
  for (const [key, byThreads] of profiles) {
    const [model, b] = key.split(' ');
    kf.push({ model: model!, batch: Number(b!.slice(1)), ...kernelFamilies(byThreads) });
  }

  const fileMeta: PeersReport['meta']['files'] = {};
  for (const [m, f] of Object.entries(files)) {
    const st = statSync(f.onnx);
    fileMeta[m] = { ...f, onnxBytes: st.size, modified: st.mtime.toISOString() };
  }
  const report: PeersReport = {
    meta: {
      command: `npm run bench -- ${argv.join(' ')}`.trim(),
      date: new Date().toISOString(),
      machine: `${cpus().length}× ${cpuModel}`,
      cpuModel,
      cores: cpus().length,
      node: process.version,
      versions: {
        tfjs: tf.version_core,
        'onnxruntime-web': packageVersion('onnxruntime-web'),
        'onnxruntime-node': packageVersion('onnxruntime-node'),
      },
      onnxDir: args.onnxDir,
      files: fileMeta,
      rounds: args.rounds,
      runs: args.runs,
      warmups: args.warmups,
      input: `standard-normal NHWC [batch, ${IMG}, ${IMG}, 3], seed 1234 (../shared/peers' randn), the same in every engine`,
      loadAverage: { start: load0, end: loadavg() },
      wallSeconds: Math.round((now() - t0) / 100) / 10,
    },
    ceiling,
    flopsPerImage,
    cells,
    kernelFamilies: kf,
  };
  if (provisional) report.meta.provisional = provisional;
  mkdirSync(args.out, { recursive: true });
  const json = JSON.stringify(report, null, 1).replace(/\[\s+(-?[\d.e+-]+(?:,\s+-?[\d.e+-]+)*)\s+\]/g, (_, nums: string) => `[${nums.replace(/\s+/g, '')}]`);
  writeFileSync(join(args.out, 'peers.json'), json + '\n');
  const md = peersMarkdown(report);
  writeFileSync(join(args.out, 'peers.md'), md);
  console.log('\n' + md);
  console.log(`wrote ${join(args.out, 'peers.json')} and ${join(args.out, 'peers.md')}`);
}

// ───────────────────────────── the report ──────────────────────────────────────────────────────────────────────

const pct = (x: number | undefined): string => (x === undefined ? '–' : `${x.toFixed(x < 10 ? 1 : 0)}%`);
const ratio = (x: number | undefined): string => (x === undefined ? '–' : `${x.toFixed(2)}×`);

function engineText(e: EngineCell | undefined): string {
  if (!e) return '–';
  if (!e.imgPerSec) return `ERROR ${(e.errors[0] ?? '').slice(0, 80).replace(/\|/g, '\\|')}`;
  const busy = e.cpuBusyPct.some((b) => b !== undefined && b > 15) ? ' !' : '';
  return `${fmtRate(e.imgPerSec)}${busy}`;
}

export function peersMarkdown(r: PeersReport): string {
  const m = r.meta;
  const L: string[] = [];
  L.push('# softbias against onnxruntime on the same weights (`--peers`)', '');
  if (m.provisional) L.push(`> **Provisional numbers, not final:** ${m.provisional}`, '');
  // What onnxruntime-web loaded and its env.wasm flags, per thread count (numThreads differs, the rest should not).
  const web = new Map<string, number[]>();
  for (const c of r.cells) {
    const i = c.engines.ortweb?.info;
    if (!i?.wasm) continue;
    const key = `${i.wasm}; env.wasm ${i.flags}`;
    const ts = web.get(key) ?? [];
    if (!ts.includes(c.threads)) ts.push(c.threads);
    web.set(key, ts);
  }
  L.push(
    `- Command: \`${m.command}\``,
    `- Date: ${m.date}; wall ${m.wallSeconds ?? '?'} s; load average at start ${m.loadAverage.start.map((x) => x.toFixed(2)).join(' ')}${m.loadAverage.end ? `, at end ${m.loadAverage.end.map((x) => x.toFixed(2)).join(' ')}` : ''}`,
    `- Machine: ${m.machine}; Node ${m.node}`,
    `- Versions: tfjs ${m.versions.tfjs}, onnxruntime-web ${m.versions['onnxruntime-web']}, onnxruntime-node ${m.versions['onnxruntime-node']}`,
    `- onnxruntime-web: ${web.size ? [...web].map(([k, ts]) => `${ts.length < r.cells.length ? `at ${ts.join(', ')} thread(s): ` : ''}${k}`).join(' · ') : 'not run'}; graphOptimizationLevel all, sequential. onnxruntime-node: CPU execution provider, intraOpNumThreads = threads, interOpNumThreads 1, graphOptimizationLevel all.`,
    `- softbias: the default path (\`createModel(name)\`, \`loadWeights(<name>.safetensors)\`, \`forward\`) on \`setupBackend('wasm', { threads })\`.`,
    `- Weights: ${m.onnxDir} (${Object.entries(m.files).map(([k, f]) => `${k} ← ${f.onnx.split('/').pop()} + ${f.safetensors.split('/').pop()}, ${f.modified.slice(0, 16)}`).join('; ')}).`,
    `- Input: ${m.input}.`,
    `- Timing: one process per engine × model × batch × threads; ${m.rounds} round(s), engines interleaved (order rotating per cell and round); ${m.warmups} warm-ups (the first call included) then ${m.runs} timed runs per process; img/s at the median of every round's runs. \`!\`: the CPUs were more than 15% busy (other processes) just before one of that cell's processes.`,
    '',
  );
  const threads = Object.keys(r.ceiling).map(Number);
  if (threads.length) {
    L.push(
      '## The 128-bit SIMD ceiling (peak probe)',
      '',
      'GFLOP/s of independent `f32x4.mul` + `f32x4.add` chains (benchmarks/src/peak: 8 or 12 accumulators, fused multiply-then-add or separate multiply and add chains; the best variant), on N worker_threads at once, probed before and after the cells (the better one counts). WebAssembly has no FMA: this is the most a wasm kernel can issue.',
      '',
      '| threads | GFLOP/s | per thread | best variant | before / after | all variants |',
      '|---|---|---|---|---|---|',
    );
    for (const t of threads) {
      const c = r.ceiling[t]!;
      L.push(`| ${t} | **${c.gflops.toFixed(1)}** | ${c.perThread.toFixed(1)} | ${c.best} | ${c.before?.toFixed(1) ?? '–'} / ${c.after?.toFixed(1) ?? '–'} | ${c.variants.map((v) => `${v.style}×${v.chains} ${v.gflops.toFixed(1)}`).join(', ')} |`);
    }
    L.push('');
  }
  const flops = Object.entries(r.flopsPerImage);
  if (flops.length) {
    L.push(
      `FLOPs per image (2 × @softbias/metrics' MAC count: linears, convolutions, attention matmuls; GPSA's input-independent positional attention not counted): ${flops.map(([k, f]) => `${k} ${(f / 1e9).toFixed(3)} G`).join(', ')}.` +
        (threads.length ? ` So the ceiling allows, in img/s: ${flops.map(([k, f]) => `${k} ${threads.map((t) => fmtRate((r.ceiling[t]!.gflops * 1e9) / f)).join(' / ')}`).join(', ')} (at ${threads.join(' / ')} threads).` : ''),
      '',
    );
  }
  L.push(
    '## Forward, img/s',
    '',
    '| model | batch | threads | softbias | onnxruntime-web | softbias ÷ ort-web | onnxruntime-node | softbias % of ceiling | ort-web % of ceiling | max \\|Δ\\| vs ort-web | max \\|Δ\\| vs ort-node |',
    '|---|---|---|---|---|---|---|---|---|---|---|',
  );
  const agree = (c: PeerCell, e: Engine): string => {
    const a = c.agreement.find((x) => x.against === e);
    return a ? `${fmtExp(a.maxAbsDiff)} (${fmtExp(a.relative)} rel)${a.top1Same ? '' : ' TOP-1 DIFFERS'}` : '–';
  };
  for (const c of r.cells) {
    L.push(
      `| ${c.model} | ${c.batch} | ${c.threads} | ${engineText(c.engines.softbias)} | ${engineText(c.engines.ortweb)} | ${ratio(c.ratioVsOrtWeb)} | ${engineText(c.engines.ortnode)} | ${pct(c.engines.softbias?.pctOfCeiling)} | ${pct(c.engines.ortweb?.pctOfCeiling)} | ${agree(c, 'ortweb')} | ${agree(c, 'ortnode')} |`,
    );
  }
  L.push('');
  L.push('Median latency (first call) and peak RSS per engine:', '');
  L.push('| model | batch | threads | ' + ENGINES.map((e) => ENGINE_LABEL[e]).join(' | ') + ' |', '|---|---|---|' + ENGINES.map(() => '---|').join(''));
  for (const c of r.cells) {
    const t = (e: EngineCell | undefined): string => (e?.medianMs ? `${fmtMs(e.medianMs)} (${fmtMs(e.firstMs ?? NaN)}), ${e.peakRssMiB?.toFixed(0) ?? '?'} MiB` : '–');
    L.push(`| ${c.model} | ${c.batch} | ${c.threads} | ${ENGINES.map((e) => t(c.engines[e])).join(' | ')} |`);
  }
  L.push('');
  const errs = r.cells.flatMap((c) => Object.values(c.engines).flatMap((e) => (e ? e.errors.map((x) => `- ${e.engine} ${c.model} b${c.batch} t${c.threads}: ${x}`) : [])));
  if (errs.length) L.push('Errors:', '', ...errs, '');
  if (r.kernelFamilies.length) {
    L.push(
      "## softbias' kernel families by thread count",
      '',
      "One profiled forward per model × batch × threads (tf.profile after the timed runs; wall clock around each kernel), summed per kernel name (`_FusedMatMul` counted with BatchMatMul; softbias' fused kernels are the `Softbias…` rows). Speed-up = time at the fewest threads ÷ time at the most.",
      '',
    );
    for (const f of r.kernelFamilies) L.push(...familiesMarkdown(`${f.model}, batch ${f.batch}`, f.totalMs, f.rows));
  }
  return L.join('\n');
}

