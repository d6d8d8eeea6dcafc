/**
 * Node only: start tfjs-backend-wasm 4.22's threaded (SIMD + pthreads) build, which as shipped cannot start in
 * Node, without touching node_modules.
 *
 * What stops it, and what this module does about each (only while the backend initialises; everything is
 * restored afterwards):
 * 1. tfjs hands the pthread workers `blob:` URLs (`URL.createObjectURL(new Blob([workerSource]))`), which Node's
 *    `worker_threads` cannot load. `Blob` is wrapped so the worker source is known synchronously, and
 *    `URL.createObjectURL` writes it to a `.cjs` file in a private temporary folder and returns that path.
 * 2. The worker then loads the main script from a `Blob` too (`mainScriptUrlOrBlob`), and that script is a
 *    bundled function whose free variables (`require$$0` …, `commonjsGlobal`) exist only in the bundle. The main
 *    script is written to a file when its `Blob` is built, and the worker file starts with a prelude that defines
 *    those names and points the worker's own `URL.createObjectURL` at that file.
 * 3. XNNPACK's thread count is capped at half of `os.cpus().length` (read once, when the module starts): `os.cpus`
 *    reports at least `2 × threads` CPUs during the start, so the cap is the requested count.
 * 4. emscripten keeps its pthread workers referenced, so a Node program would never exit: after the start every
 *    pool worker is unreferenced (they only ever run work the main thread waits for synchronously).
 */

/** Import a Node built-in by a computed name so browser bundlers leave it alone. */
const nodeImport = (name: string): Promise<any> => import(/* @vite-ignore */ /* webpackIgnore: true */ name);

/** The names the bundled emscripten factory expects from the bundle's scope (tfjs-backend-wasm 4.22 node bundle). */
const WORKER_PRELUDE =
  "Object.assign(globalThis,{require$$0:require('fs'),require$$1:require('path'),require$$3:require('perf_hooks')," +
  "require$$4:require('os'),commonjsGlobal:globalThis});";

const MAIN_SCRIPT_PREFIX = 'var WasmBackendModuleThreadedSimd';

export interface NodeWasmThreadShims {
  /** Undo the global patches (Blob, URL.createObjectURL, os.cpus). Call right after the backend started. */
  restore(): void;
  /** Whether the threaded build asked for its worker and main scripts (i.e. the shims were used). */
  readonly used: boolean;
}

let scriptDir: string | undefined;
/** What each script file in `scriptDir` holds (written once; a changed text replaces the file atomically). */
const written = new Map<string, string>();

export async function installNodeWasmThreadShims(threads: number): Promise<NodeWasmThreadShims> {
  const os = (await nodeImport('node:os')).default;
  const fs = (await nodeImport('node:fs')).default;
  const path = (await nodeImport('node:path')).default;
  if (!scriptDir) {
    const dir: string = fs.mkdtempSync(path.join(os.tmpdir(), 'softbias-wasm-threads-'));
    scriptDir = dir;
    // Workers created later (when XNNPACK grows its pool) read these files too: keep them until exit.
    process.once('exit', () => {
      try {
        fs.rmSync(dir, { recursive: true, force: true });
      } catch {
        /* best effort */
      }
    });
  }
  const dir = scriptDir;
  const mainPath = path.join(dir, 'tfjs-backend-wasm-threaded-simd.main.cjs');
  const workerPath = path.join(dir, 'tfjs-backend-wasm-threaded-simd.worker.cjs');

  // emscripten asks for the worker script once per pthread worker (8 at the start), and workers started earlier are
  // reading the file meanwhile: rewriting it in place (truncate, then write) let a worker read an empty script, run
  // nothing and exit, so tfjs waited forever for its 'loaded' message and Node, with nothing else referenced, quit
  // with status 13 and no message (about 1 start in 250 here, 6 at a time on 2 cores). Each file is written once, to
  // a temporary name and renamed into place, so a reader sees either no file or the whole script.
  const writeOnce = (file: string, text: string): void => {
    if (written.get(file) === text) return;
    const tmp = `${file}.${process.pid}.${written.size}.tmp`;
    fs.writeFileSync(tmp, text);
    fs.renameSync(tmp, file);
    written.set(file, text);
  };
  const OriginalBlob = globalThis.Blob;
  const originalCreateObjectURL = URL.createObjectURL;
  const originalCpus = os.cpus;
  const texts = new WeakMap<Blob, string>();
  let used = false;

  class SourceRecordingBlob extends OriginalBlob {
    constructor(parts?: BlobPart[], options?: BlobPropertyBag) {
      super(parts, options);
      if (parts && parts.every((p) => typeof p === 'string')) {
        const text = (parts as string[]).join('');
        texts.set(this, text);
        if (text.startsWith(MAIN_SCRIPT_PREFIX)) {
          writeOnce(mainPath, text);
          used = true;
        }
      }
    }
  }

  globalThis.Blob = SourceRecordingBlob as typeof Blob;
  URL.createObjectURL = (obj: Blob | MediaSource): string => {
    const text = obj instanceof OriginalBlob ? texts.get(obj) : undefined;
    if (text === undefined || text.startsWith(MAIN_SCRIPT_PREFIX)) return originalCreateObjectURL(obj as Blob);
    // The pthread worker script. Inside the worker, the only object URL ever made is for the main script.
    const prelude =
      WORKER_PRELUDE +
      `URL.createObjectURL=function(){return ${JSON.stringify(mainPath)}};URL.revokeObjectURL=function(){};\n`;
    writeOnce(workerPath, prelude + text);
    used = true;
    return workerPath;
  };
  os.cpus = () => {
    const real = originalCpus.call(os) as unknown[];
    const n = Math.max(real.length, 2 * threads);
    return Array.from({ length: n }, (_, i) => real[i % Math.max(1, real.length)]);
  };

  return {
    restore() {
      globalThis.Blob = OriginalBlob;
      URL.createObjectURL = originalCreateObjectURL;
      os.cpus = originalCpus;
    },
    get used() {
      return used;
    },
  };
}

/** Let Node exit while the (idle or waiting) pthread workers of a started wasm module exist. */
export function unrefWasmWorkers(wasmModule: any): void {
  const pthread = wasmModule?.PThread;
  if (!pthread) return;
  const unref = (w: any) => {
    if (w && typeof w.unref === 'function') {
      w.unref();
      w.ref = () => {};
    }
  };
  for (const w of [...(pthread.unusedWorkers ?? []), ...(pthread.runningWorkers ?? [])]) unref(w);
  const allocate = pthread.allocateUnusedWorker;
  if (typeof allocate === 'function' && !allocate.__softbiasUnref) {
    const wrapped = function (this: unknown, ...args: unknown[]) {
      const r = allocate.apply(this, args);
      for (const w of pthread.unusedWorkers ?? []) unref(w);
      return r;
    };
    (wrapped as any).__softbiasUnref = true;
    pthread.allocateUnusedWorker = wrapped;
  }
}
