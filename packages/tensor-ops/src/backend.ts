/**
 * Backend setup for Node and the browser: `await setupBackend('auto' | 'cpu' | 'wasm' | 'webgpu' | 'tensorflow')`.
 *
 * `auto` tries, in order: WebGPU on a real GPU adapter, then wasm, then cpu. A CPU-emulated WebGPU adapter
 * (SwiftShader and other `isFallbackAdapter` adapters) is for correctness checks only and is far slower than
 * wasm, so `auto` never picks it; asking for `webgpu` explicitly accepts it (and says so).
 */
import * as tf from '@tensorflow/tfjs-core';
import './gradients.js';

export type BackendName = 'cpu' | 'wasm' | 'webgpu' | 'tensorflow';
export type BackendRequest = BackendName | 'auto';

/** tfjs-backend-wasm pre-creates 8 pthread workers and XNNPACK never uses more. */
const MAX_WASM_THREADS = 8;

export interface SetupBackendOptions {
  /**
   * wasm threads, 1 to 8 (softbias' kernels; XNNPACK's share: `xnnpackThreads`). Default 1. More than one is
   * opt-in (tfjs' threaded build, whose shared memory the kernels' workers use): in a browser it needs a
   * cross-origin-isolated page (SharedArrayBuffer); in Node softbias serves tfjs' worker scripts from files and
   * lifts tfjs' half-the-logical-cores cap (see wasm-threads-node.ts). Fixed by the first wasm start in a process.
   */
  threads?: number;
  /**
   * wasm: how many of `threads` XNNPACK (tfjs' own kernels) uses; softbias' kernels (matmuls, attention,
   * depth-wise convolutions, GELU, LayerNorm, bias adds: nearly all the time of these models) always use all of
   * them. Default 1: two thread pools on the same cores get in each other's way (measured on 2 cores: forwards
   * 15–20% faster than with XNNPACK on 2 threads as well).
   */
  xnnpackThreads?: number;
  /** webgpu: accept a CPU-emulated (fallback) adapter. Default: true for an explicit `webgpu`, false for `auto`. */
  allowFallbackAdapter?: boolean;
  /**
   * webgpu: tfjs computes small tensors on the CPU by default (`WEBGPU_CPU_FORWARD`). Default false here, so
   * every op runs on the GPU (what tests and parity checks mean by "webgpu").
   */
  cpuForward?: boolean;
  /** webgpu: adapter power preference. */
  powerPreference?: 'high-performance' | 'low-power';
  /**
   * wasm: where tfjs-backend-wasm's .wasm files are served from (a URL prefix ending in '/', or a map from file
   * name to URL). In Node they are found beside the package; in a bundled app (Vite, webpack) copy
   * `node_modules/@tensorflow/tfjs-backend-wasm/dist/*.wasm` to your public folder and pass its URL here.
   */
  wasmPaths?: string | Record<string, string>;
  /**
   * `auto`: called when a faster backend failed to start and a slower one was taken (e.g. the wasm binaries were
   * not found and cpu, 30–50× slower, runs instead). Default `console.warn`; pass `() => {}` to silence it.
   */
  onFallback?: (message: string) => void;
  /**
   * Node: probe for a WebGPU adapter in a short-lived child process first. Dawn (the `webgpu` package) writes its
   * adapter warnings (Vulkan loader messages, devices it rejects) straight to stderr, where JavaScript cannot
   * filter them; with `quietProbe` they stay off the terminal and are kept in the webgpu attempt's `output`.
   * WebGPU then starts in this process only when the child found an adapter this request would use (a real GPU,
   * or a CPU-emulated one when `allowFallbackAdapter`). Costs one Node start (~0.1–0.5 s). Default false.
   */
  quietProbe?: boolean;
}

export interface AdapterDescription {
  vendor: string;
  architecture: string;
  description: string;
  device: string;
  isFallbackAdapter: boolean;
}

export interface BackendAttempt {
  backend: BackendName;
  ok: boolean;
  reason: string;
  /** What the native WebGPU library wrote while probing, when `quietProbe` captured it (else on stderr). */
  output?: string;
}

export interface BackendInfo {
  /** The backend now active in tfjs. */
  backend: BackendName;
  requested: BackendRequest;
  /** Why this backend was chosen (one sentence). */
  reason: string;
  /** Every backend tried, in order, with why it was or was not used. */
  attempts: BackendAttempt[];
  runtime: 'node' | 'browser';
  adapter?: AdapterDescription;
  /** wasm: threads softbias' kernels use (what `{ threads }` asked for). */
  threads?: number;
  /** wasm: threads tfjs' own XNNPACK kernels use (see `SetupBackendOptions.xnnpackThreads`). */
  xnnpackThreads?: number;
  simd?: boolean;
}

export class BackendUnavailableError extends Error {
  constructor(
    readonly backend: BackendName,
    message: string,
  ) {
    super(message);
    this.name = 'BackendUnavailableError';
  }
}

export const isNode: boolean =
  typeof process !== 'undefined' && typeof process.versions === 'object' && typeof process.versions.node === 'string';

/** Import a module by a computed name so bundlers leave optional, Node-only packages alone. */
const dynamicImport = (name: string): Promise<any> => import(/* @vite-ignore */ /* webpackIgnore: true */ name);

let nodeGpu: GPU | null | undefined;

/** The WebGPU entry point: `navigator.gpu` in a browser, Dawn (the `webgpu` npm package) in Node. */
export async function getGpu(): Promise<GPU> {
  const nav = (globalThis as any).navigator;
  if (nav?.gpu) return nav.gpu as GPU;
  if (!isNode) {
    throw new BackendUnavailableError('webgpu', 'WebGPU is not available in this browser (navigator.gpu is undefined).');
  }
  if (nodeGpu) return nodeGpu;
  let mod: any;
  try {
    mod = await dynamicImport('webgpu');
  } catch (e) {
    throw new BackendUnavailableError(
      'webgpu',
      "WebGPU in Node needs the optional peer dependency 'webgpu' (Dawn): npm install webgpu. " +
        `(${(e as Error).message})`,
    );
  }
  Object.assign(globalThis, mod.globals);
  const gpu: GPU = mod.create([]);
  nodeGpu = gpu;
  // tfjs-backend-webgpu reads navigator.gpu. Node ≥ 21 has a read-only navigator: define gpu on it.
  if (nav) {
    try {
      Object.defineProperty(nav, 'gpu', { value: gpu, configurable: true });
    } catch {
      /* ignore */
    }
  } else {
    (globalThis as any).navigator = { gpu };
  }
  if (!(globalThis as any).navigator?.gpu) {
    throw new BackendUnavailableError('webgpu', 'could not expose navigator.gpu for tfjs-backend-webgpu');
  }
  return gpu;
}

/**
 * Ask for a WebGPU adapter and describe it, without touching tfjs. Returns null (with the reason) when none.
 */
export async function probeWebGpu(
  opts: { powerPreference?: 'high-performance' | 'low-power' } = {},
): Promise<{ adapter: AdapterDescription | null; reason: string }> {
  let gpu: GPU;
  try {
    gpu = await getGpu();
  } catch (e) {
    return { adapter: null, reason: (e as Error).message };
  }
  const adapter = await gpu.requestAdapter(opts.powerPreference ? { powerPreference: opts.powerPreference } : {});
  if (!adapter) return { adapter: null, reason: NO_ADAPTER() };
  return { adapter: describeAdapter(adapter), reason: 'adapter found' };
}

const NO_ADAPTER = () =>
  isNode
    ? 'no WebGPU adapter: Dawn found no Vulkan device. Without a GPU, install a CPU Vulkan driver ' +
      "(Debian: apt-get install chromium libvulkan1) and set VK_ICD_FILENAMES to its vk_swiftshader_icd.json " +
      '(dpkg -L chromium-common | grep icd) and XDG_RUNTIME_DIR to a writable folder.'
    : 'no WebGPU adapter (requestAdapter returned null)';

/** The child of `probeWebGpuInChild`: argv[1] the webgpu package's URL, argv[2] the power preference or ''. */
const CHILD_PROBE = `
const m = await import(process.argv[1]);
Object.assign(globalThis, m.globals);
const a = await m.create([]).requestAdapter(process.argv[2] ? { powerPreference: process.argv[2] } : {});
const i = a ? (a.info ?? {}) : null;
const r = i && { vendor: i.vendor, architecture: i.architecture, description: i.description, device: i.device,
  isFallbackAdapter: i.isFallbackAdapter ?? a.isFallbackAdapter ?? false };
process.stdout.write('PROBE ' + JSON.stringify(r) + '\\n', () => process.exit(0));
`;

/**
 * `probeWebGpu` in a child Node process (its stderr captured: Dawn's native warnings never reach this one's).
 * Null when the child could not run at all (then probe in this process).
 */
async function probeWebGpuInChild(opts: {
  powerPreference?: 'high-performance' | 'low-power';
}): Promise<{ adapter: AdapterDescription | null; reason: string; output: string } | null> {
  let url: string;
  try {
    const { createRequire } = await dynamicImport('node:module');
    const { pathToFileURL } = await dynamicImport('node:url');
    url = pathToFileURL(createRequire(import.meta.url).resolve('webgpu')).href;
  } catch (e) {
    return {
      adapter: null,
      reason: `WebGPU in Node needs the optional peer dependency 'webgpu' (Dawn): npm install webgpu. (${(e as Error).message.split('\n')[0]})`,
      output: '',
    };
  }
  const { execFile } = await dynamicImport('node:child_process');
  const r = await new Promise<{ error: (Error & { code?: unknown }) | null; stdout: string; stderr: string }>((done) =>
    execFile(
      process.execPath,
      ['--input-type=module', '-e', CHILD_PROBE, url, opts.powerPreference ?? ''],
      { encoding: 'utf8', timeout: 30_000, maxBuffer: 4 * 1024 * 1024 },
      (error: (Error & { code?: unknown }) | null, stdout: string, stderr: string) => done({ error, stdout, stderr }),
    ),
  );
  const line = r.stdout.split('\n').find((l) => l.startsWith('PROBE '));
  const output = r.stderr.trim();
  if (!line) {
    // Not started at all (no process to run, e.g. spawning refused): let the caller probe here.
    if (r.error && typeof r.error.code === 'string' && !output) return null;
    return { adapter: null, reason: `the WebGPU probe process failed (${r.error?.message.split('\n')[0] ?? 'no answer'})`, output };
  }
  const info = JSON.parse(line.slice(6)) as { isFallbackAdapter?: unknown } | null;
  if (!info) return { adapter: null, reason: NO_ADAPTER(), output };
  return { adapter: describeInfo(info, Boolean(info.isFallbackAdapter)), reason: 'adapter found', output };
}

function describeAdapter(adapter: GPUAdapter): AdapterDescription {
  const info: any = (adapter as any).info ?? {};
  return describeInfo(info, Boolean(info.isFallbackAdapter ?? (adapter as any).isFallbackAdapter ?? false));
}

function describeInfo(info: any, isFallbackAdapter: boolean): AdapterDescription {
  const text = `${info.vendor ?? ''} ${info.architecture ?? ''} ${info.description ?? ''} ${info.device ?? ''}`;
  return {
    vendor: String(info.vendor ?? ''),
    architecture: String(info.architecture ?? ''),
    description: String(info.description ?? ''),
    device: String(info.device ?? ''),
    // Some Dawn builds do not flag SwiftShader/llvmpipe as fallback: treat them as such anyway.
    isFallbackAdapter: isFallbackAdapter || /swiftshader|llvmpipe|lavapipe|software/i.test(text),
  };
}

async function trySetBackend(name: string): Promise<void> {
  const ok = await tf.setBackend(name);
  if (!ok || tf.getBackend() !== name) throw new Error(`tf.setBackend('${name}') failed`);
  await tf.ready();
}

async function setupCpu(info: Partial<BackendInfo>): Promise<void> {
  await import('@tensorflow/tfjs-backend-cpu');
  await trySetBackend('cpu');
  // tfjs' cpu backend prints a "Hi, looks like you are running TensorFlow.js in Node.js…" banner on its first
  // tensor in Node. setupBackend already says what runs and what is faster (BackendInfo.reason; 'wasm', and
  // 'tensorflow' where tfjs-node is installed), so the banner is only noise on a CLI's stderr: mark it shown.
  const cpu = tf.backend() as { firstUse?: unknown };
  if (typeof cpu.firstUse === 'boolean') cpu.firstUse = false;
  info.reason ??= 'plain JavaScript kernels (always available; slowest)';
}

async function setupWasm(opts: SetupBackendOptions, info: Partial<BackendInfo>): Promise<void> {
  const wasm = await import('@tensorflow/tfjs-backend-wasm');
  // softbias' own wasm kernels (SIMD GEMM, conv backprop tfjs lacks, …), and the worker threads they may use.
  (await import('./kernels/register.js')).registerSoftbiasWasmKernels();
  await (await import('./kernels/runtime.js')).prepareKernelWorkers();
  const threads = opts.threads ?? 1;
  if (!Number.isInteger(threads) || threads < 1 || threads > MAX_WASM_THREADS) {
    throw new RangeError(`threads must be an integer from 1 to ${MAX_WASM_THREADS}, got ${threads}`);
  }
  // tfjs starts the wasm module once per process: its thread count is fixed by the first start.
  // (Not tf.findBackend: that would start it, single-threaded.)
  const started = (tf.engine() as any).registry?.['wasm'];
  if (started) {
    const actual = wasmThreadsStarted ?? wasm.getThreadsCount();
    if (opts.threads !== undefined && actual !== threads) {
      throw new BackendUnavailableError(
        'wasm',
        `the wasm backend already runs with ${actual} thread(s) in this process and tfjs cannot restart it: ` +
          `choose { threads } in the first setupBackend('wasm') call`,
      );
    }
    await trySetBackend('wasm');
    info.simd = Boolean(await tf.env().getAsync('WASM_HAS_SIMD_SUPPORT'));
    info.threads = actual;
    info.xnnpackThreads = wasm.getThreadsCount();
    info.reason ??= wasmReason(actual, info.xnnpackThreads);
    return;
  }
  if (opts.wasmPaths) wasm.setWasmPaths(opts.wasmPaths as any);
  if (threads > 1) {
    if (!isNode && typeof SharedArrayBuffer === 'undefined') {
      throw new BackendUnavailableError(
        'wasm',
        `wasm with ${threads} threads needs SharedArrayBuffer, i.e. a cross-origin-isolated page ` +
          '(Cross-Origin-Opener-Policy: same-origin and Cross-Origin-Embedder-Policy: require-corp)',
      );
    }
    if (opts.wasmPaths && typeof opts.wasmPaths === 'string' && opts.wasmPaths.endsWith('.wasm')) {
      throw new BackendUnavailableError('wasm', 'wasmPaths naming one .wasm file selects the single-threaded build');
    }
    tf.env().set('WASM_HAS_MULTITHREAD_SUPPORT', true);
    const xnn = opts.xnnpackThreads ?? 1;
    if (!Number.isInteger(xnn) || xnn < 1 || xnn > threads) {
      throw new RangeError(`xnnpackThreads must be an integer from 1 to threads (${threads}), got ${xnn}`);
    }
    wasm.setThreadsCount(xnn);
    (await import('./kernels/runtime.js')).setDefaultKernelThreads(threads);
    if (isNode) {
      // The shims depend on the internals of this exact bundle (its worker script and free variable names).
      if (!String(wasm.version_wasm).startsWith('4.22.')) {
        throw new BackendUnavailableError(
          'wasm',
          `wasm threads in Node are supported with @tensorflow/tfjs-backend-wasm 4.22, found ${wasm.version_wasm}`,
        );
      }
      const { installNodeWasmThreadShims, unrefWasmWorkers } = await import('./wasm-threads-node.js');
      const shims = await installNodeWasmThreadShims(threads);
      try {
        await trySetBackend('wasm');
      } finally {
        shims.restore();
      }
      unrefWasmWorkers((tf.backend() as any).wasm);
    } else {
      // In a browser XNNPACK caps its threads at half of navigator.hardwareConcurrency (1 on a 2-core machine):
      // report at least 2 × threads while the module starts, so the requested count is what runs.
      const restore = raiseHardwareConcurrency(2 * threads);
      try {
        await trySetBackend('wasm');
      } finally {
        restore();
      }
    }
  } else {
    tf.env().set('WASM_HAS_MULTITHREAD_SUPPORT', false);
    await trySetBackend('wasm');
  }
  const simd = Boolean(await tf.env().getAsync('WASM_HAS_SIMD_SUPPORT'));
  if (!simd) {
    throw new BackendUnavailableError('wasm', 'this runtime has no WebAssembly SIMD; softbias requires it for wasm');
  }
  info.simd = simd;
  const xnnStarted = wasm.getThreadsCount();
  const wantXnn = threads > 1 ? (opts.xnnpackThreads ?? 1) : 1;
  if (xnnStarted !== wantXnn) {
    throw new BackendUnavailableError('wasm', `asked for ${wantXnn} XNNPACK thread(s), tfjs started ${xnnStarted}`);
  }
  info.threads = threads;
  info.xnnpackThreads = xnnStarted;
  wasmThreadsStarted = threads;
  info.reason ??= wasmReason(threads, xnnStarted);
}

/** The thread count of the first wasm start in this process (tfjs cannot restart it). */
let wasmThreadsStarted: number | undefined;

function wasmReason(threads: number, xnnpack: number): string {
  return threads === 1
    ? 'WebAssembly SIMD (softbias kernels + XNNPACK), 1 thread'
    : `WebAssembly SIMD, ${threads} thread(s) for softbias' kernels (XNNPACK: ${xnnpack})`;
}

/** Make `navigator.hardwareConcurrency` report at least `n` until the returned function is called. */
function raiseHardwareConcurrency(n: number): () => void {
  const nav = (globalThis as { navigator?: { hardwareConcurrency?: number } }).navigator;
  const real = nav?.hardwareConcurrency;
  if (!nav || typeof real !== 'number' || real >= n) return () => {};
  try {
    Object.defineProperty(nav, 'hardwareConcurrency', { value: n, configurable: true });
  } catch {
    return () => {};
  }
  return () => {
    delete (nav as { hardwareConcurrency?: number }).hardwareConcurrency; // back to the prototype's getter
  };
}

async function setupWebGpu(
  opts: SetupBackendOptions,
  info: Partial<BackendInfo>,
  allowFallback: boolean,
  captured: { output?: string },
): Promise<void> {
  const pp = opts.powerPreference ? { powerPreference: opts.powerPreference } : {};
  const refuse = (adapter: AdapterDescription | null, reason: string) => {
    if (!adapter) throw new BackendUnavailableError('webgpu', reason);
    if (adapter.isFallbackAdapter && !allowFallback) {
      throw new BackendUnavailableError(
        'webgpu',
        `only a CPU-emulated adapter (${adapter.vendor} ${adapter.architecture} ${adapter.description}`.trim() +
          '): correct but far slower than wasm, so auto skips it (ask for webgpu explicitly to use it)',
      );
    }
  };
  // Dawn already loaded here (an earlier probe): nothing more it would print on its start.
  if (opts.quietProbe && isNode && !nodeGpu && !(globalThis as any).navigator?.gpu) {
    const child = await probeWebGpuInChild(pp);
    if (child) {
      if (child.output) captured.output = child.output;
      refuse(child.adapter, child.reason);
    }
  }
  const probe = await probeWebGpu(pp);
  refuse(probe.adapter, probe.reason);
  if (!probe.adapter) return; // (refuse threw)
  await import('@tensorflow/tfjs-backend-webgpu');
  await trySetBackend('webgpu');
  tf.env().set('WEBGPU_CPU_FORWARD', opts.cpuForward ?? false);
  info.adapter = probe.adapter;
  info.reason ??= probe.adapter.isFallbackAdapter
    ? `WebGPU on a CPU-emulated adapter (${probe.adapter.vendor || 'fallback'}): correctness only, slower than wasm`
    : `WebGPU on ${probe.adapter.vendor || 'a GPU'} ${probe.adapter.architecture}`.trim();
}

async function setupTensorflow(info: Partial<BackendInfo>): Promise<void> {
  if (!isNode) {
    throw new BackendUnavailableError('tensorflow', "the 'tensorflow' backend (libtensorflow) exists only in Node");
  }
  const errors: string[] = [];
  for (const pkg of ['@tensorflow/tfjs-node-gpu', '@tensorflow/tfjs-node']) {
    try {
      await dynamicImport(pkg);
      await trySetBackend('tensorflow');
      info.reason ??= `libtensorflow through ${pkg}${pkg.endsWith('gpu') ? ' (CUDA)' : ' (CPU)'}`;
      return;
    } catch (e) {
      errors.push(`${pkg}: ${(e as Error).message.split('\n')[0]}`);
    }
  }
  throw new BackendUnavailableError(
    'tensorflow',
    "The 'tensorflow' backend needs @tensorflow/tfjs-node-gpu (CUDA) or @tensorflow/tfjs-node (CPU), an optional " +
      'peer dependency that is not installed: npm install @tensorflow/tfjs-node-gpu@~4.22.0 (its installer downloads ' +
      `libtensorflow). Tried: ${errors.join('; ')}`,
  );
}

/**
 * Select and initialise a tfjs backend. Returns what was chosen and why; throws `BackendUnavailableError`
 * (with the reason and what to install) when an explicitly requested backend cannot start.
 */
export async function setupBackend(request: BackendRequest = 'auto', opts: SetupBackendOptions = {}): Promise<BackendInfo> {
  const attempts: BackendAttempt[] = [];
  const runtime = isNode ? 'node' : 'browser';
  const order: BackendName[] = request === 'auto' ? ['webgpu', 'wasm', 'cpu'] : [request];
  if (!['auto', 'cpu', 'wasm', 'webgpu', 'tensorflow'].includes(request)) {
    throw new RangeError(`setupBackend: unknown backend '${request}' (auto, cpu, wasm, webgpu, tensorflow)`);
  }
  for (const name of order) {
    const info: Partial<BackendInfo> = {};
    const captured: { output?: string } = {};
    try {
      if (name === 'cpu') await setupCpu(info);
      else if (name === 'wasm') await setupWasm(opts, info);
      else if (name === 'webgpu') await setupWebGpu(opts, info, opts.allowFallbackAdapter ?? request === 'webgpu', captured);
      else await setupTensorflow(info);
      attempts.push({ backend: name, ok: true, reason: info.reason!, ...(captured.output ? { output: captured.output } : {}) });
      const reason =
        request === 'auto' && attempts.length > 1
          ? `${info.reason} (auto: ${attempts
              .filter((a) => !a.ok)
              .map((a) => `${a.backend} skipped: ${a.reason}`)
              .join('; ')})`
          : info.reason!;
      const failedWasm = attempts.find((a) => a.backend === 'wasm' && !a.ok);
      if (request === 'auto' && name === 'cpu' && failedWasm) {
        (opts.onFallback ?? ((m: string) => console.warn(m)))(
          `softbias setupBackend('auto'): the wasm backend could not start (${failedWasm.reason}); running on cpu, ` +
            '30–50× slower. In a bundled app, serve tfjs-backend-wasm\'s .wasm files (node_modules/@tensorflow/' +
            "tfjs-backend-wasm/dist/*.wasm) and pass setupBackend('auto', { wasmPaths: '<their URL>/' }).",
        );
      }
      return { ...info, backend: name, requested: request, reason, attempts, runtime } as BackendInfo;
    } catch (e) {
      attempts.push({ backend: name, ok: false, reason: (e as Error).message, ...(captured.output ? { output: captured.output } : {}) });
      if (request !== 'auto') {
        if (e instanceof BackendUnavailableError) throw e;
        throw new BackendUnavailableError(name, `backend '${name}' could not start: ${(e as Error).message}`);
      }
    }
  }
  throw new Error(`setupBackend('auto'): no backend could start: ${attempts.map((a) => `${a.backend}: ${a.reason}`).join('; ')}`);
}
