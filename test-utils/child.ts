/**
 * Run a TypeScript entry point in a fresh Node process (no vitest): esbuild bundles it with the workspace's
 * package sources (tfjs stays external, resolved from node_modules), then `node` runs the bundle. For what needs
 * a process of its own, e.g. the wasm backend with threads (tfjs fixes its thread count at the first start).
 * The entry prints one line `RESULT <json>`; that JSON is returned.
 */
import { spawnSync } from 'node:child_process';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { buildSync } from 'esbuild';
import { softbiasSources } from '../scripts/source-aliases.mjs';

const root = fileURLToPath(new URL('..', import.meta.url));


export interface ChildResult<T> {
  status: number | null;
  /** The signal that ended the child (SIGTERM when it ran past `timeoutMs`), else null. */
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
  result: T | undefined;
  /** How the child ended, in one line (exit status or signal, spawn error, seconds): for assertion messages. */
  how: string;
}

export function runTsInChild<T = unknown>(entry: string, opts: { env?: Record<string, string>; timeoutMs?: number; args?: string[] } = {}): ChildResult<T> {
  const outDir = join(root, '.tmp', 'child');
  mkdirSync(outDir, { recursive: true });
  const outfile = join(outDir, `${entry.replace(/[^A-Za-z0-9]+/g, '_').slice(-60)}-${process.pid}.mjs`);
  buildSync({
    entryPoints: [entry],
    bundle: true,
    platform: 'node',
    format: 'esm',
    target: 'node20',
    outfile,
    // esbuild's alias takes the longest matching name, so '@softbias/x/sub' maps to its own source.
    alias: Object.fromEntries(softbiasSources(root)),
    external: ['@tensorflow/*', 'webgpu', 'esbuild', 'vitest'],
    logLevel: 'error',
  });
  const t0 = performance.now();
  const timeoutMs = opts.timeoutMs ?? 120_000;
  const p = spawnSync(process.execPath, [outfile, ...(opts.args ?? [])], {
    cwd: root,
    encoding: 'utf8',
    timeout: timeoutMs,
    env: { ...process.env, ...opts.env },
    maxBuffer: 64 * 1024 * 1024,
  });
  const seconds = ((performance.now() - t0) / 1000).toFixed(1);
  const stdout = p.stdout ?? '';
  const stderr = p.stderr ?? '';
  const line = stdout.split('\n').find((l) => l.startsWith('RESULT '));
  const ended = p.signal
    ? `killed by ${p.signal}`
    : `exit status ${p.status}${p.status === 13 ? ' (an await that never settled: nothing left to wake it)' : ''}`;
  const err = p.error ? `; ${(p.error as NodeJS.ErrnoException).code === 'ETIMEDOUT' ? `ran past ${timeoutMs / 1000} s` : String(p.error)}` : '';
  const how =
    `child ${ended}${err} after ${seconds} s` +
    (stderr ? `; stderr: ${stderr.slice(-2000)}` : '; stderr empty') +
    (line ? '' : stdout ? `; stdout: ${stdout.slice(-1000)}` : '; stdout empty');
  const result = line ? (JSON.parse(line.slice(7)) as T) : undefined;
  return { status: p.status, signal: p.signal, stdout, stderr, result, how };
}
