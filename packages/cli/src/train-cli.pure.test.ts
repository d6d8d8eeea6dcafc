/**
 * `softbias train` as a real process (bundled with esbuild, cpu backend): Ctrl-C stops within an update or
 * two with a checkpoint and exit code 130; `--resume` refuses a broken checkpoint or changed settings, naming
 * the file, with a non-zero exit; `--allow-settings-change` accepts the change.
 */
import { describe, it, expect, beforeAll } from 'vitest';
import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, writeFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { bundleCli } from '../test/bundle-cli.js';

const root = fileURLToPath(new URL('../../../', import.meta.url));
const assets = join(root, 'packages/data/assets/fashion-mnist');
let script = '';

beforeAll(async () => {
  mkdirSync(join(root, '.tmp'), { recursive: true });
  script = join(root, '.tmp', `train-cli-${process.pid}.mjs`);
  await bundleCli(root, script);
  return () => rmSync(script, { force: true });
});

/** A small ConViT on 300 embedded Fashion-MNIST images, batch 4 (75 updates an epoch). */
const trainArgs = (out: string, extra: string[] = []) => [
  'train',
  '--model', 'convit_tiny',
  '--set', 'embedDim=16', '--set', 'depth=1', '--set', 'numHeads=2', '--set', 'localUpToLayer=1', '--set', 'patchSize=7',
  '--data', 'fashion-mnist', '--data-dir', assets, '--fraction', '0.1', '--batch-size', '4', '--epochs', '3',
  '--backend', 'cpu', '--progress', 'none', '--out', out,
  ...extra,
];

interface Exit {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

/** Run the CLI; `onStdout` may act on the process. Killed (and reported) after `limitMs`. */
function cli(args: string[], limitMs: number, watch?: (child: ReturnType<typeof spawn>) => void): Promise<Exit & { killed: boolean }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [script, ...args], { cwd: root, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    let killed = false;
    child.stdout!.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
    const timer = setTimeout(() => {
      killed = true;
      child.kill('SIGKILL');
    }, limitMs);
    watch?.(child);
    child.on('error', reject);
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      resolve({ code, signal, stdout, stderr, killed });
    });
  });
}

const records = (out: string) =>
  existsSync(join(out, 'log.jsonl'))
    ? readFileSync(join(out, 'log.jsonl'), 'utf8').trim().split('\n').filter(Boolean).map((l) => JSON.parse(l) as Record<string, unknown>)
    : [];

describe('softbias train (a real process)', () => {
  let out = '';
  it('SIGINT stops within a couple of updates, saves a checkpoint, writes no final weights and exits 130', async () => {
    out = mkdtempSync(join(tmpdir(), 'softbias-cli-'));
    let signalledAt: number | undefined;
    let sentAt = 0;
    const r = await cli(trainArgs(out), 90_000, (child) => {
      const poll = setInterval(() => {
        const steps = records(out).filter((x) => x['type'] === 'step');
        if (steps.length >= 2) {
          clearInterval(poll);
          signalledAt = steps.at(-1)!['step'] as number;
          sentAt = Date.now();
          child.kill('SIGINT');
        }
      }, 20);
      child.on('close', () => clearInterval(poll));
    });
    const tookMs = Date.now() - sentAt;
    expect(r.killed, `still running ${tookMs} ms after SIGINT; stdout: ${r.stdout}`).toBe(false);
    expect(signalledAt).toBeDefined();
    expect(r.code, r.stderr).toBe(130);
    const ckpt = records(out).filter((x) => x['type'] === 'checkpoint').at(-1)!;
    expect(ckpt['reason']).toBe('abort');
    expect(ckpt['step'] as number).toBeLessThanOrEqual(signalledAt! + 3); // not the epoch's end (75)
    expect(existsSync(join(out, 'checkpoint.safetensors'))).toBe(true);
    expect(existsSync(join(out, 'model.safetensors'))).toBe(false);
    expect(r.stdout).toMatch(/aborted \(SIGINT\) at step \d+; checkpoint .*checkpoint\.safetensors/);
  }, 120_000);

  it('--resume with changed settings is refused (exit 1, the differences listed); --allow-settings-change accepts them', async () => {
    expect(out).not.toBe('');
    const refused = await cli(trainArgs(out, ['--resume', '--lr', '0.002']), 60_000);
    expect(refused.code).toBe(1);
    expect(refused.stderr).toContain(`cannot resume from ${join(out, 'checkpoint.safetensors')}`);
    expect(refused.stderr).toMatch(/optimizer\.lr: 0\.001 in the checkpoint, 0\.002 now/);
    expect(refused.stderr).toMatch(/--allow-settings-change/);
    // Allowed: it resumes (stopped again right away by SIGINT once it logs its resume record).
    const allowed = await cli(trainArgs(out, ['--resume', '--lr', '0.002', '--allow-settings-change']), 60_000, (child) => {
      const poll = setInterval(() => {
        if (records(out).some((x) => x['type'] === 'resume')) {
          clearInterval(poll);
          child.kill('SIGINT');
        }
      }, 20);
      child.on('close', () => clearInterval(poll));
    });
    expect(allowed.code, allowed.stderr).toBe(130);
    expect(records(out).filter((x) => x['type'] === 'warning').map((x) => x['message']).join('\n')).toMatch(/changed settings/);
  }, 120_000);

  it('--resume on a directory in place of the checkpoint fails naming it (no fresh start)', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'softbias-cli-'));
    mkdirSync(join(dir, 'checkpoint.safetensors'));
    writeFileSync(join(dir, 'log.jsonl'), '');
    const r = await cli(trainArgs(dir, ['--resume']), 60_000);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(new RegExp(`cannot resume from ${join(dir, 'checkpoint.safetensors')}: EISDIR`));
    expect(records(dir).some((x) => x['type'] === 'step')).toBe(false);
  }, 60_000);
});
