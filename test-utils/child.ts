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
  stdout: string;
  stderr: string;
  result: T | undefined;
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
  const p = spawnSync(process.execPath, [outfile, ...(opts.args ?? [])], {
    cwd: root,
    encoding: 'utf8',
    timeout: opts.timeoutMs ?? 120_000,
    env: { ...process.env, ...opts.env },
    maxBuffer: 64 * 1024 * 1024,
  });
  const line = (p.stdout ?? '').split('\n').find((l) => l.startsWith('RESULT '));
  return { status: p.status, stdout: p.stdout ?? '', stderr: p.stderr ?? '', result: line ? (JSON.parse(line.slice(7)) as T) : undefined };
}
