/**
 * A run killed with SIGKILL mid-training and resumed from its last checkpoint ends with bitwise the same
 * weights, optimizer moments and EMA as a run never stopped (cpu backend, separate Node processes).
 */
import { describe, it, expect, beforeAll } from 'vitest';
import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { build } from 'esbuild';
import { parseSafetensors } from '@softbias/tensor-ops';

const root = fileURLToPath(new URL('../../../', import.meta.url));
let script = '';

beforeAll(async () => {
  mkdirSync(join(root, '.tmp'), { recursive: true });
  script = join(root, '.tmp', `resume-child-${process.pid}.mjs`);
  const alias: Record<string, string> = {};
  for (const p of ['tensor-ops', 'data', 'train', 'metrics']) alias[`@softbias/${p}`] = join(root, 'packages', p, 'src', 'index.ts');
  await build({
    entryPoints: [fileURLToPath(new URL('../test/resume-child.ts', import.meta.url))],
    bundle: true,
    platform: 'node',
    format: 'esm',
    target: 'node20',
    outfile: script,
    alias,
    external: ['@tensorflow/*', 'webgpu'],
    logLevel: 'error',
  });
});

interface Run {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
}

/** Run the child; with `killAfterStep`, SIGKILL it as soon as it reports that update. */
function runChild(outDir: string, mode: 'fresh' | 'resume', killAfterStep?: number): Promise<Run> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [script, outDir, mode, join(root, 'packages/data/assets/fashion-mnist')], { cwd: root, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => {
      stdout += d.toString();
      if (killAfterStep !== undefined && new RegExp(`^STEP ${killAfterStep}$`, 'm').test(stdout)) child.kill('SIGKILL');
    });
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    child.on('error', reject);
    child.on('close', (code, signal) => {
      if (code !== 0 && signal !== 'SIGKILL') reject(new Error(`child exited ${code}: ${stderr}`));
      else resolve({ code, signal, stdout });
    });
  });
}

const records = (dir: string) =>
  readFileSync(join(dir, 'log.jsonl'), 'utf8')
    .trim()
    .split('\n')
    .map((l) => JSON.parse(l) as Record<string, unknown>);

describe('SIGKILL and resume (cpu, separate processes)', () => {
  it('ends bitwise identical to an uninterrupted run', async () => {
    const base = mkdtempSync(join(tmpdir(), 'softbias-resume-'));
    const a = join(base, 'a');
    const b = join(base, 'b');
    mkdirSync(a);
    mkdirSync(b);
    const full = await runChild(a, 'fresh');
    expect(full.stdout).toMatch(/DONE completed 30/);

    const killed = await runChild(b, 'fresh', 14);
    expect(killed.signal).toBe('SIGKILL');
    expect(existsSync(join(b, 'final.safetensors'))).toBe(false); // it really died mid-run
    expect(records(b).some((r) => r['type'] === 'end')).toBe(false);
    const lastCkpt = records(b).filter((r) => r['type'] === 'checkpoint').pop()!;
    expect(lastCkpt['step']).toBeGreaterThanOrEqual(12);
    expect(lastCkpt['step']).toBeLessThan(30);

    const resumed = await runChild(b, 'resume');
    expect(resumed.stdout).toMatch(/DONE completed 30/);
    const resume = records(b).find((r) => r['type'] === 'resume')!;
    expect(resume['step']).toBe(lastCkpt['step']);
    // Steps after the checkpoint were redone: the first update the resumed process reports is the next one.
    expect(resumed.stdout.split('\n')[0]).toBe(`STEP ${(lastCkpt['step'] as number) + 1}`);

    const fa = readFileSync(join(a, 'final.safetensors'));
    const fb = readFileSync(join(b, 'final.safetensors'));
    const sa = parseSafetensors(fa);
    const sb = parseSafetensors(fb);
    expect(sb.names()).toEqual(sa.names());
    const differing = sa.names().filter((n) => Buffer.compare(Buffer.from(sa.get(n).data.buffer), Buffer.from(sb.get(n).data.buffer)) !== 0);
    expect(differing).toEqual([]);
    expect(sa.names().some((n) => n.startsWith('optimizer.exp_avg_sq.'))).toBe(true);
    expect(sa.names().some((n) => n.startsWith('ema.'))).toBe(true);
    expect(Buffer.compare(fa, fb)).toBe(0);
    // The training losses logged after the resume point equal the uninterrupted run's.
    const lossAt = (dir: string) => new Map(records(dir).filter((r) => r['type'] === 'step').map((r) => [r['step'], r['loss']]));
    const la = lossAt(a);
    const lb = lossAt(b);
    for (let s = 1; s <= 30; s++) expect(lb.get(s)).toBe(la.get(s));
  }, 300_000);
});
