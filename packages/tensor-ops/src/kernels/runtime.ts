/**
 * The runtime of softbias' WebAssembly kernels (C sources in this folder, compiled by scripts/build-kernels.mjs
 * into src/generated/kernels/*.ts): each kernel family is instantiated once per thread on tfjs-backend-wasm's own
 * `WebAssembly.Memory`, so kernels read their inputs and write their outputs in place on the backend's heap.
 *
 * Threads. With tfjs' threaded build (`setupBackend('wasm', { threads: n })`, n > 1) the memory is shared, and a
 * small pool of n − 1 workers (`worker_threads` in Node, Web Workers in a cross-origin-isolated page) instantiates
 * every family on that same memory. `parallelFor(backend, fn, ntasks, args)` hands out task indices through a
 * lock-free counter in a SharedArrayBuffer: the calling thread and the workers each claim tasks and call
 * `fn(task, ntasks, ...args)` until none are left, then the caller waits (Atomics) for the last one. Workers spin
 * briefly and then sleep in `Atomics.wait`. On a plain memory (one thread) the caller runs every task itself.
 *
 * Each thread's instance gets its own shadow stack (kernels may spill arrays there): 64 KiB malloc'd from the
 * backend's heap, never freed (a few per process).
 */
import * as tf from '@tensorflow/tfjs-core';
import * as gemmFamily from '../generated/kernels/gemm.js';
import * as depthwiseFamily from '../generated/kernels/depthwise.js';
import * as eltwiseFamily from '../generated/kernels/eltwise.js';
import * as attentionFamily from '../generated/kernels/attention.js';
import * as broadcastFamily from '../generated/kernels/broadcast.js';

/** The generated kernel families (one C file each). */
const FAMILIES: { family: string; functions: readonly string[]; plain: string; shared: string }[] = [gemmFamily, depthwiseFamily, eltwiseFamily, attentionFamily, broadcastFamily];

/** The parts of tfjs-backend-wasm's `BackendWasm` the kernels use (it is not exported as a type). */
export interface WasmHeapBackend {
  makeOutput(shape: number[], dtype: tf.DataType): tf.TensorInfo;
  typedArrayFromHeap(info: tf.TensorInfo): Float32Array | Int32Array | Uint8Array;
  disposeData(dataId: tf.DataId, force?: boolean): boolean;
  wasm: { _malloc(n: number): number; _free(p: number): void; _get_threads_count?: () => number };
}

export type KernelFn = (task: number, ntasks: number, ...args: number[]) => void;

const STACK_BYTES = 64 * 1024;
const MAX_TASKS = 4095;
/** How long an idle worker spins on the call counter before it sleeps (µs). */
const SPIN_MICROS = 5;
const MAX_ARGS = 24;
// Control words (Int32Array over a SharedArrayBuffer).
const SEQ = 0; // job sequence number (workers wait on it)
const NEXT = 1; // (seq & 0x7ffff) << 12 | next task index
const DONE = 2; // tasks finished
const ERR = 3; // a worker's kernel threw
const FN = 4; // flat function index
const NTASK = 5;
const NARGS = 6;
const READY = 7; // workers instantiated

interface Runtime {
  memory: WebAssembly.Memory;
  shared: boolean;
  /** Main-thread exports, `family.name` → function. */
  fns: Map<string, KernelFn>;
  /** Flat index of each `family.name` (the order workers use). */
  index: Map<string, number>;
  pool: Pool | null;
}

interface Pool {
  ctl: Int32Array;
  args: Float64Array;
  workers: { terminate(): unknown }[];
  seq: number;
}

const runtimes = new WeakMap<WebAssembly.Memory, Runtime | null>();
let modules: Map<string, { plain: WebAssembly.Module; shared: WebAssembly.Module }> | null = null;
/** Threads for softbias' kernels: null = the default below. */
let threadsOverride: number | null = null;
/** The thread count setupBackend('wasm', { threads }) asked for (null: tfjs' own thread count). */
let threadsDefault: number | null = null;

/** Called by setupBackend with its `threads` (softbias' kernels use them all, whatever XNNPACK uses). */
export function setDefaultKernelThreads(n: number): void {
  threadsDefault = n;
}

function decode(b64: string): Uint8Array<ArrayBuffer> {
  const s = atob(b64);
  const out = new Uint8Array(s.length);
  for (let i = 0; i < s.length; i++) out[i] = s.charCodeAt(i);
  return out;
}

function compiled(): Map<string, { plain: WebAssembly.Module; shared: WebAssembly.Module }> {
  if (!modules) {
    modules = new Map();
    for (const f of FAMILIES) {
      modules.set(f.family, { plain: new WebAssembly.Module(decode(f.plain)), shared: new WebAssembly.Module(decode(f.shared)) });
    }
  }
  return modules;
}

/** The backend's WebAssembly.Memory (Emscripten: `asm.memory` single-threaded, `wasmMemory` threaded). */
export function backendMemory(backend: unknown): WebAssembly.Memory | null {
  const mod = (backend as { wasm?: { asm?: { memory?: unknown }; wasmMemory?: unknown } }).wasm;
  const mem = mod?.wasmMemory ?? mod?.asm?.memory;
  return typeof WebAssembly !== 'undefined' && mem instanceof WebAssembly.Memory ? mem : null;
}

function isSharedMemory(memory: WebAssembly.Memory): boolean {
  return typeof SharedArrayBuffer !== 'undefined' && memory.buffer instanceof SharedArrayBuffer;
}

/** XNNPACK's thread count in this backend (1 when unknown). */
export function backendThreads(backend: unknown): number {
  const fn = (backend as { wasm?: { _get_threads_count?: () => number } }).wasm?._get_threads_count;
  const n = typeof fn === 'function' ? fn() : 1;
  return Number.isInteger(n) && n > 0 ? n : 1;
}

/**
 * Override how many threads softbias' kernels use (null: back to the default, the `threads` that
 * setupBackend('wasm') started with). Only a shared memory (tfjs' threaded build) can be used by several
 * threads; on a plain memory the kernels run on the calling thread whatever this says. For benchmarks.
 */
export function setKernelThreads(n: number | null): void {
  if (n !== null && (!Number.isInteger(n) || n < 1 || n > 8)) throw new RangeError(`kernel threads must be 1..8, got ${n}`);
  threadsOverride = n;
}

function instantiate(module: WebAssembly.Module, memory: WebAssembly.Memory, stackTop: number): WebAssembly.Exports {
  const inst = new WebAssembly.Instance(module, { env: { memory } });
  (inst.exports.__stack_pointer as WebAssembly.Global).value = stackTop;
  return inst.exports;
}

function mallocStack(backend: WasmHeapBackend): number {
  const base = backend.wasm._malloc(STACK_BYTES + 16) >>> 0;
  if (!base) throw new Error('softbias kernels: could not allocate a kernel stack on the wasm heap');
  return (base + STACK_BYTES) & ~15;
}

/** The kernels bound to this backend's memory (compiled once per process, instantiated once per memory). */
function runtime(backend: unknown): Runtime | null {
  const memory = backendMemory(backend);
  if (!memory) return null;
  if (runtimes.has(memory)) return runtimes.get(memory)!;
  let rt: Runtime | null = null;
  try {
    const shared = isSharedMemory(memory);
    const be = backend as WasmHeapBackend;
    const fns = new Map<string, KernelFn>();
    const index = new Map<string, number>();
    const stack = mallocStack(be);
    for (const [family, m] of compiled()) {
      const ex = instantiate(shared ? m.shared : m.plain, memory, stack);
      for (const name of FAMILIES.find((f) => f.family === family)!.functions) {
        index.set(`${family}.${name}`, index.size);
        fns.set(`${family}.${name}`, ex[name] as unknown as KernelFn);
      }
    }
    rt = { memory, shared, fns, index, pool: null };
  } catch {
    rt = null;
  }
  runtimes.set(memory, rt);
  return rt;
}

/** True when softbias' kernels can run on this backend (tfjs-backend-wasm with SIMD). */
export function kernelsAvailable(backend: unknown): boolean {
  return runtime(backend) !== null;
}

/** A main-thread kernel by `family.name`, or null when unavailable (not wasm, no SIMD, unknown name). */
export function kernel(backend: unknown, name: string): KernelFn | null {
  return runtime(backend)?.fns.get(name) ?? null;
}

/** Threads the kernels will use on this backend now. */
export function kernelThreads(backend: unknown): number {
  const rt = runtime(backend);
  if (!rt || !rt.shared) return 1;
  const n = threadsOverride ?? threadsDefault ?? backendThreads(backend);
  return Math.max(1, n);
}

// ---------------------------------------------------------------------------------------------------------
// The pool
// ---------------------------------------------------------------------------------------------------------

/**
 * The worker's loop, as plain JavaScript source (a string, not a function's `toString()`, so that a bundler's
 * minifier cannot rename what it refers to). `init` receives the shared memory, the compiled modules in
 * flat-index order, the control words, the argument slots and this worker's stack top. The control words are
 * those of the constants above: 0 SEQ, 1 NEXT, 2 DONE, 3 ERR, 4 FN, 5 NTASK, 6 NARGS, 7 READY.
 */
const WORKER_MAIN = `function softbiasKernelWorker(init) {
  var ctl = new Int32Array(init.ctl);
  var args = new Float64Array(init.args);
  var fns = [];
  for (var f = 0; f < init.families.length; f++) {
    var inst = new WebAssembly.Instance(init.families[f].module, { env: { memory: init.memory } });
    inst.exports.__stack_pointer.value = init.stackTop;
    for (var n = 0; n < init.families[f].names.length; n++) fns.push(inst.exports[init.families[f].names[n]]);
  }
  var seen = Atomics.load(ctl, 0);
  Atomics.add(ctl, 7, 1);
  var a = [];
  for (;;) {
    var s = Atomics.load(ctl, 0);
    // Spin for up to init.spinMicros before sleeping: consecutive kernels of a forward come a few microseconds
    // apart, and waking a sleeping thread (futex) costs tens of microseconds, as much as a small kernel.
    if (s === seen) {
      var t0 = performance.now();
      for (var spin = 1; s === seen; spin++) {
        s = Atomics.load(ctl, 0);
        if ((spin & 255) === 0 && performance.now() - t0 > init.spinMicros / 1000) break;
      }
    }
    if (s === seen) { Atomics.wait(ctl, 0, seen); continue; }
    seen = s;
    var tag = s & 0x7ffff;
    var fn = fns[Atomics.load(ctl, 4)];
    var nt = Atomics.load(ctl, 5);
    var na = Atomics.load(ctl, 6);
    a.length = 0;
    a.push(0, nt);
    for (var i = 0; i < na; i++) a.push(args[i]);
    for (;;) {
      var v = Atomics.load(ctl, 1);
      if ((v >>> 12) !== tag) break;
      var t = v & 0xfff;
      if (t >= nt) break;
      if (Atomics.compareExchange(ctl, 1, v, v + 1) !== v) continue;
      a[0] = t;
      try { fn.apply(null, a); } catch (e) { Atomics.store(ctl, 3, 1); }
      Atomics.add(ctl, 2, 1);
      Atomics.notify(ctl, 2);
    }
  }
}`;

const isNode = typeof process !== 'undefined' && typeof process.versions?.node === 'string';
let nodeWorkerCtor: (new (src: string, opts: object) => { unref(): void; terminate(): unknown; postMessage(m: unknown): void }) | null =
  null;

/** Load `node:worker_threads` ahead of the first parallel kernel (Node only; called by setupBackend). */
export async function prepareKernelWorkers(): Promise<void> {
  if (isNode && !nodeWorkerCtor) {
    const wt = await import(/* @vite-ignore */ /* webpackIgnore: true */ 'node:worker_threads' as string);
    nodeWorkerCtor = wt.Worker;
  }
}

function startPool(backend: WasmHeapBackend, rt: Runtime, threads: number): Pool | null {
  const ctlBuf = new SharedArrayBuffer(64);
  const argBuf = new SharedArrayBuffer(8 * MAX_ARGS);
  const families: { module: WebAssembly.Module; names: string[] }[] = [];
  for (const [family, m] of compiled()) {
    families.push({ module: m.shared, names: [...FAMILIES.find((f) => f.family === family)!.functions] });
  }
  const workers: { terminate(): unknown }[] = [];
  const body = `(${WORKER_MAIN})`;
  for (let w = 0; w < threads - 1; w++) {
    const init = { memory: rt.memory, families, ctl: ctlBuf, args: argBuf, stackTop: mallocStack(backend), spinMicros: SPIN_MICROS };
    if (isNode) {
      if (!nodeWorkerCtor) return null;
      const src = `const { workerData } = require('node:worker_threads'); ${body}(workerData);`;
      const worker = new nodeWorkerCtor(src, { eval: true, workerData: init });
      worker.unref();
      workers.push(worker);
    } else if (typeof Worker !== 'undefined') {
      const url = URL.createObjectURL(new Blob([`onmessage = (e) => ${body}(e.data);`], { type: 'text/javascript' }));
      const worker = new Worker(url);
      worker.postMessage(init);
      workers.push(worker);
    } else return null;
  }
  return { ctl: new Int32Array(ctlBuf), args: new Float64Array(argBuf), workers, seq: 0 };
}

/** Main thread of a browser page: Atomics.wait is not allowed there. */
let canWait = true;

/**
 * Run `fn(task, ntasks, ...args)` for every task index (`name` = 'family.function'), split across the kernel
 * threads when the memory is shared, else on this thread. Throws when a task threw (a wasm trap) on any thread.
 */
export function parallelFor(backend: unknown, name: string, ntasks: number, args: number[]): void {
  const rt = runtime(backend);
  const fn = rt?.fns.get(name);
  if (!rt || !fn) throw new Error(`softbias kernels: '${name}' is not available on this backend`);
  if (!Number.isInteger(ntasks) || ntasks < 1 || ntasks > MAX_TASKS) throw new RangeError(`parallelFor: ntasks ${ntasks}`);
  if (args.length > MAX_ARGS) throw new RangeError(`parallelFor: at most ${MAX_ARGS} arguments`);
  const threads = ntasks > 1 ? kernelThreads(backend) : 1;
  if (threads > 1 && !rt.pool) rt.pool = startPool(backend as WasmHeapBackend, rt, threads);
  const pool = threads > 1 ? rt.pool : null;
  if (!pool || Atomics.load(pool.ctl, READY) === 0) {
    for (let t = 0; t < ntasks; t++) fn(t, ntasks, ...args);
    return;
  }
  const { ctl } = pool;
  pool.seq = (pool.seq + 1) & 0x7ffff;
  const tag = pool.seq;
  // Close the task counter under the new tag before anything else changes: a worker that woke for the previous
  // call late (after this thread ran all of its tasks itself) may still be reading the previous call's function
  // and arguments; with the counter closed its claim fails (wrong tag), so it never runs a task with a mix of the
  // two calls' arguments. (t = 0xfff ≥ any ntasks: nothing can be claimed until the counter opens below.)
  Atomics.store(ctl, NEXT, (tag << 12) | 0xfff);
  Atomics.store(ctl, FN, rt.index.get(name)!);
  Atomics.store(ctl, NTASK, ntasks);
  Atomics.store(ctl, NARGS, args.length);
  for (let i = 0; i < args.length; i++) pool.args[i] = args[i]!;
  Atomics.store(ctl, DONE, 0);
  Atomics.store(ctl, ERR, 0);
  Atomics.store(ctl, NEXT, tag << 12);
  Atomics.store(ctl, SEQ, tag);
  Atomics.notify(ctl, SEQ);
  let error: unknown = null;
  for (;;) {
    const v = Atomics.load(ctl, NEXT);
    const t = v & 0xfff;
    if (t >= ntasks) break;
    if (Atomics.compareExchange(ctl, NEXT, v, v + 1) !== v) continue;
    try {
      fn(t, ntasks, ...args);
    } catch (e) {
      error ??= e;
    }
    Atomics.add(ctl, DONE, 1);
  }
  for (let spin = 0; ; spin++) {
    const d = Atomics.load(ctl, DONE);
    if (d >= ntasks) break;
    if (spin > 2000 && canWait) {
      try {
        Atomics.wait(ctl, DONE, d, 5);
      } catch {
        canWait = false;
      }
    }
  }
  if (error) throw error;
  if (Atomics.load(ctl, ERR)) throw new Error(`softbias kernel '${name}' failed on a worker thread`);
}

/** Byte address of a tensor's data on the wasm heap. */
export function heapAddress(backend: unknown, t: tf.TensorInfo): number {
  return (backend as WasmHeapBackend).typedArrayFromHeap(t).byteOffset;
}

/** Scratch bytes on the wasm heap (16-byte aligned by emscripten's malloc); free with `freeScratch`. */
export function mallocScratch(backend: unknown, bytes: number): number {
  const p = (backend as WasmHeapBackend).wasm._malloc(bytes) >>> 0;
  if (!p && bytes > 0) throw new Error(`softbias kernels: out of wasm memory allocating ${bytes} bytes of scratch`);
  return p;
}

export function freeScratch(backend: unknown, p: number): void {
  if (p) (backend as WasmHeapBackend).wasm._free(p);
}

/** Stop the pool's workers for this backend (tests; the workers are unreferenced and never keep Node alive). */
export function stopKernelWorkers(backend: unknown): void {
  const rt = runtime(backend);
  if (rt?.pool) {
    for (const w of rt.pool.workers) w.terminate();
    rt.pool = null;
  }
}
