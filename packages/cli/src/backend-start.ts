/**
 * How every CLI command starts its backend and says so: `setupBackend` with, in `auto` mode, a quiet WebGPU
 * probe (Dawn writes its adapter warnings natively to stderr: the probe runs in a child process), then one
 * backend line — what ran and, in a clause, what `auto` skipped. `verbose` shows every attempt's full reason
 * (with the Vulkan set-up advice), what the native library printed while probing, and fallback warnings.
 */
import { setupBackend, type BackendInfo, type BackendRequest } from '@softbias/tensor-ops';

export interface StartBackendOptions {
  verbose?: boolean;
  /** wasm threads. */
  threads?: number;
  log: (line: string) => void;
}

/** Start the backend and log its line(s) (see the module comment). */
export async function startBackend(request: BackendRequest, o: StartBackendOptions): Promise<BackendInfo> {
  const verbose = o.verbose ?? false;
  const fallbackWarnings: string[] = [];
  const info = await setupBackend(request, {
    ...(o.threads !== undefined ? { threads: o.threads } : {}),
    quietProbe: request === 'auto' && !verbose,
    onFallback: (m) => fallbackWarnings.push(m),
  });
  for (const l of backendLines(info, verbose, fallbackWarnings)) o.log(l);
  return info;
}

/** What an auto fallback skipped, in a few words (the full reason is the attempt's, shown with verbose). */
function shortSkip(a: BackendInfo['attempts'][number]): string {
  if (a.backend === 'webgpu') {
    if (/CPU-emulated/.test(a.reason)) return 'WebGPU only on a CPU-emulated adapter (slower than wasm)';
    if (/peer dependency 'webgpu'/.test(a.reason)) return "no WebGPU ('webgpu' package not installed)";
    if (/no WebGPU adapter/.test(a.reason)) return 'no WebGPU adapter';
    return 'WebGPU did not start';
  }
  if (a.backend === 'wasm') return 'wasm did not start, cpu is 30–50× slower';
  return `${a.backend} did not start`;
}

/**
 * The backend line(s): one line, saying in a clause what `auto` skipped and why it picked this backend; with
 * `verbose`, every attempt's full reason and what the native libraries printed while probing.
 */
export function backendLines(info: BackendInfo, verbose: boolean, warnings: readonly string[] = []): string[] {
  if (!verbose) return [`backend: ${backendNote(info, '; --verbose says why')}`];
  const lines = [`backend: ${info.backend}, ${chosenReason(info)}`];
  for (const a of info.attempts) {
    if (!a.ok) lines.push(`  ${a.backend} skipped: ${a.reason}`);
    if (a.output) lines.push(`  ${a.backend} probe output:`, ...a.output.split('\n').map((l) => `    ${l}`));
  }
  for (const w of warnings) lines.push(`  ${w}`);
  return lines;
}

const chosenReason = (info: BackendInfo) => info.attempts.find((a) => a.ok && a.backend === info.backend)?.reason ?? info.reason;

/** The backend in a few words: what ran, and in a clause what `auto` skipped (the full story: verbose, results.json). */
export function backendNote(info: BackendInfo, hint = ''): string {
  const skipped = info.attempts.filter((a) => !a.ok);
  const why = info.requested === 'auto' && skipped.length ? ` (auto: ${skipped.map(shortSkip).join('; ')}${hint})` : '';
  return `${info.backend}, ${chosenReason(info)}${why}`;
}

