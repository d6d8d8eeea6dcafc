/** Page entry for headless Chromium: exposes `softbiasBench(spec, cfg)`, which runs the suite on this page. */
import { runSuite } from './suite.js';
import type { BackendResult, BackendSpec, SuiteConfig } from './types.js';

declare global {
  interface Window {
    softbiasBench(spec: BackendSpec, cfg: SuiteConfig): Promise<BackendResult>;
    /** The latest checkpoint of the running suite (read by the runner when it stops a page early). */
    softbiasBenchPartial?: BackendResult;
  }
}

window.softbiasBench = (spec, cfg) =>
  runSuite(
    {
      async readAsset(name) {
        const res = await fetch(`/assets/${name}`);
        if (!res.ok) throw new Error(`GET /assets/${name}: HTTP ${res.status}`);
        return new Uint8Array(await res.arrayBuffer());
      },
      log: (line) => console.log(`[bench] ${line}`),
      checkpoint: (partial) => {
        window.softbiasBenchPartial = partial;
      },
      backendOptions: { wasmPaths: `${location.origin}/wasm/` },
      environment: {
        runtime: 'chromium',
        userAgent: navigator.userAgent,
        crossOriginIsolated: globalThis.crossOriginIsolated === true,
        hardwareConcurrency: navigator.hardwareConcurrency,
      },
    },
    spec,
    cfg,
  );
