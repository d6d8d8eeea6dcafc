/**
 * Child process of backend.test.ts: setupBackend('auto') with wasm binaries that cannot be found falls back to cpu
 * and says so through onFallback (naming wasmPaths). Prints `RESULT <json>`.
 */
import { setupBackend } from '@softbias/tensor-ops';

const warnings: string[] = [];
const info = await setupBackend('auto', { wasmPaths: '/nonexistent/softbias-wasm/', onFallback: (m) => warnings.push(m) });
console.log('RESULT ' + JSON.stringify({ backend: info.backend, warnings }));
