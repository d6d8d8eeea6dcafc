/**
 * Child process of backend-quiet-probe.pure.test.ts: setupBackend('auto'), with `quietProbe` when argv[2] is
 * 'quiet'. Prints `RESULT <json>`; whatever Dawn writes natively lands on this process's stderr.
 */
import { setupBackend } from '@softbias/tensor-ops';

const info = await setupBackend('auto', { quietProbe: process.argv[2] === 'quiet' });
console.log(`RESULT ${JSON.stringify({ backend: info.backend, attempts: info.attempts })}`);
