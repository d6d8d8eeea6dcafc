/**
 * The command line's options and paths: every subcommand's --help; unknown options, options a command does not
 * use and bad values refused with the valid choices (exit 2); eval on a training checkpoint says what the file
 * is; --out / an output file that is a device, a FIFO or a file is refused before anything runs; train on a
 * folder of 224-px images derives a sane ConViT geometry and refuses a configuration that cannot fit in memory,
 * naming the setting to change. Most cases run main() in-process (cheap); three spawn the real CLI.
 */
import { describe, it, expect, beforeAll, vi } from 'vitest';
import { spawn, execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { bundleCli } from '../test/bundle-cli.js';
import { serializeSafetensors } from '@softbias/tensor-ops';
import { main } from './bin.js';
import { COMMANDS, UsageError } from './options.js';
import { checkTrainingMemory, convitPatchSize } from './memory.js';
import { encodePng } from '../../data/test/png-writer.js';

const root = fileURLToPath(new URL('../../../', import.meta.url));
let script = '';

beforeAll(async () => {
  mkdirSync(join(root, '.tmp'), { recursive: true });
  script = join(root, '.tmp', `cli-options-${process.pid}.mjs`);
  await bundleCli(root, script);
  return () => rmSync(script, { force: true });
});

function cli(args: string[], limitMs = 60_000): Promise<{ code: number | null; stdout: string; stderr: string; killed: boolean }> {
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
    child.on('error', reject);
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr, killed });
    });
  });
}

/** main() in-process: the UsageError it throws (or fails the test). */
async function usage(args: string[]): Promise<string> {
  const e = await main(args).then(
    () => undefined,
    (err: unknown) => err,
  );
  expect(e, `softbias ${args.join(' ')} was accepted`).toBeInstanceOf(UsageError);
  return (e as Error).message;
}

const tiny = ['--model', 'convit_tiny', '--backend', 'cpu'];

describe('softbias options', () => {
  it('every subcommand has --help (exit 0) listing its options; help <command> too', async () => {
    const log = vi.spyOn(console, 'log').mockImplementation(() => {});
    try {
      for (const cmd of [...Object.keys(COMMANDS), 'export']) {
        log.mockClear();
        expect(await main([cmd, '--help']), cmd).toBe(0);
        const text = log.mock.calls.map((c) => String(c[0])).join('\n');
        expect(text, cmd).toMatch(new RegExp(`softbias ${cmd}`));
        for (const o of Object.keys(COMMANDS[cmd]?.options ?? {})) expect(text, `${cmd} --${o}`).toContain(`--${o}`);
      }
      log.mockClear();
      expect(await main(['help', 'train'])).toBe(0);
      expect(String(log.mock.calls[0]![0])).toMatch(/--batch-size B +images per update, an integer ≥ 1/);
    } finally {
      log.mockRestore();
    }
  });

  it('options a command does not use, unknown options and positionals are refused with its options', async () => {
    expect(await usage(['train', ...tiny, '--runs', '3'])).toMatch(/^train does not take --runs \(bench does\); train's options: --model --pretrained --weights --set/);
    // --verbose (the backend's full story) is every command's that starts a backend; a flag takes no value.
    for (const cmd of ['demo', 'train', 'eval', 'inspect', 'bench', 'pretrain']) expect(COMMANDS[cmd]?.options, cmd).toHaveProperty('verbose');
    expect(await usage(['demo', '--verbose=yes'])).toMatch(/--verbose/);
    expect(await usage(['train', ...tiny, '--pretrained', 'timm/convit_tiny.fb_in1k'])).toMatch(/^train takes --model NAME or --pretrained, not both/);
    expect(await usage(['train', '--pretrained', 'timm/convit_tiny.fb_in1k', '--weights', 'w.safetensors'])).toMatch(/^train takes --pretrained ID or --weights FILE, not both/);
    expect(await usage(['train'])).toMatch(/^train needs --model NAME \(softbias list\), --pretrained ID or --weights FILE/);
    expect(await usage(['eval', '--weights', 'w', '--epochs', '3'])).toMatch(/^eval does not take --epochs \(demo, train, pretrain do\)/);
    expect(await usage(['bench', ...tiny, '--progress', 'none'])).toMatch(/^bench does not take --progress/);
    expect(await usage(['train', ...tiny, '--batchsize', '4'])).toMatch(/unknown option --batchsize for train \(did you mean --batch-size\?\)/);
    expect(await usage(['train', ...tiny, 'extra'])).toMatch(/train takes no positional arguments, got 'extra'/);
    expect(await usage(['train', '--model'])).toMatch(/--model needs a value \(NAME: registered model/);
    expect(await usage(['trian'])).toMatch(/unknown command 'trian'/);
  });

  it('bad values are refused with the valid choices', async () => {
    expect(await usage(['train', ...tiny, '--progress', 'foo'])).toBe("--progress expects one of bar, lines, none, got 'foo'");
    expect(await usage(['train', ...tiny, '--data', 'bogus'])).toBe(
      "--data expects one of fashion-mnist, fashion-mnist-embedded, fashion-mnist-full, cifar10, folder, got 'bogus'",
    );
    expect(await usage(['train', ...tiny, '--data', 'cifar'])).toMatch(/got 'cifar' \(did you mean cifar10\?\)/);
    expect(await usage(['train', ...tiny, '--batch-size', '0'])).toBe("--batch-size expects an integer ≥ 1, got '0'");
    expect(await usage(['train', ...tiny, '--epochs', '-3'])).toBe("--epochs expects an integer ≥ 1, got '-3'");
    expect(await usage(['train', ...tiny, '--epochs', '2.5'])).toBe("--epochs expects an integer ≥ 1, got '2.5'");
    expect(await usage(['train', ...tiny, '--fraction', '0'])).toBe("--fraction expects a number in (0, 1], got '0'");
    expect(await usage(['train', ...tiny, '--fraction', '1.5'])).toBe("--fraction expects a number in (0, 1], got '1.5'");
    expect(await usage(['train', ...tiny, '--lr', 'abc'])).toBe("--lr expects a number > 0, got 'abc'");
    expect(await usage(['train', ...tiny, '--backend', 'gpu'])).toMatch(/^--backend expects one of auto, cpu, wasm, webgpu, tensorflow, got 'gpu'/);
    expect(await usage(['train', ...tiny, '--allow-settings-change'])).toBe('--allow-settings-change goes with --resume');
    expect(await usage(['bench', ...tiny, '--batch', '0'])).toBe("--batch expects comma-separated integers ≥ 1, got '0'");
    expect(await usage(['bench', ...tiny, '--batch', '1,,8'])).toMatch(/--batch expects comma-separated integers ≥ 1/);
    expect(await usage(['pretrain', '--mask-ratio', '1'])).toBe("--mask-ratio expects a number in (0, 1), got '1'");
    expect(await usage(['pretrain', '--depths', '2,2,6'])).toBe("--depths expects 4 integers ≥ 1, comma-separated, got '2,2,6'");
    expect(await usage(['demo', '--gpsa-layers', '9'])).toBe("--gpsa-layers expects an integer in [0, 6], got '9'");
    expect(await usage(['demo', '--fraction', '-0.5'])).toBe("--fraction expects a number in (0, 1], got '-0.5'");
  });

  it('eval on a training checkpoint says what the file is and how to get weights', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'softbias-ckpt-'));
    const ckpt = join(dir, 'checkpoint.safetensors');
    const meta = { format: 'softbias-checkpoint', 'softbias.checkpoint': JSON.stringify({ version: 1, step: 150, rngs: {} }) };
    writeFileSync(ckpt, serializeSafetensors({ 'head.weight': { shape: [2], data: new Float32Array(2) } }, { metadata: meta }));
    const msg = await usage(['eval', '--weights', ckpt]);
    expect(msg).toMatch(new RegExp(`^--weights ${ckpt} is a training checkpoint at step 150 .*not a weights file`));
    expect(msg).toContain(`softbias train --resume --out ${dir}`);
    expect(msg).toContain(join(dir, 'model.safetensors'));
    expect(await usage(['inspect', '--weights', ckpt])).toMatch(/is a training checkpoint/);
    expect(await usage(['eval', '--weights', join(dir, 'nope.safetensors')])).toMatch(/no such file/);
    expect(await usage(['eval', '--weights', dir])).toMatch(/is a folder, not a weights file/);
  });

  it('--out that is a device, a FIFO, a file, or under a file is refused before anything runs', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'softbias-out-'));
    const file = join(dir, 'a-file');
    writeFileSync(file, 'x');
    const fifo = join(dir, 'fifo');
    execFileSync('mkfifo', [fifo]);
    expect(await usage(['train', ...tiny, '--out', '/dev/full'])).toBe('--out /dev/full is a device, not a folder: give a folder to write into (it is created when missing)');
    expect(await usage(['train', ...tiny, '--out', fifo])).toMatch(/is a FIFO \(named pipe\), not a folder/);
    expect(await usage(['pretrain', '--out', file])).toMatch(/is a file, not a folder/);
    expect(await usage(['demo', '--out', join(file, 'sub')])).toMatch(/a-file is a file, not a folder, so the folder cannot be created/);
    const weights = join(dir, 'w.safetensors');
    writeFileSync(weights, serializeSafetensors({ w: { shape: [1], data: new Float32Array(1) } }));
    expect(await usage(['export', weights, fifo])).toMatch(/MODEL\.onnx .*fifo is a FIFO \(named pipe\), not a regular file/);
    expect(await usage(['export', weights, '/dev/full'])).toMatch(/is a device, not a regular file/);
    expect(await usage(['export', weights, join(dir, 'missing', 'm.onnx')])).toMatch(/the folder .* does not exist/);
    expect(await usage(['export', weights, 'm.onnx', '--opset', '0'])).toMatch(/--opset expects an integer ≥ 1, got '0' \(softbias export --help\)/);
  });

  it('ConViT geometry for a data set: 4 for small images (as before), a 16×16 grid at 224; memory checked before building', () => {
    expect(convitPatchSize(28, 28)).toBe(4);
    expect(convitPatchSize(32, 32)).toBe(4);
    expect(convitPatchSize(224, 224)).toBe(14);
    expect(convitPatchSize(30, 30)).toBe(2);
    expect(convitPatchSize(17, 17)).toBe(1);
    // The old rule's patch 4 at 224: 3136 tokens; refused on wasm with the settings to change.
    expect(() => checkTrainingMemory('convit_tiny', 'convit', { imgSize: [224, 224], patchSize: 4 }, 64, 'wasm')).toThrow(
      /convit_tiny at 224×224 with patchSize 4 \(3136 tokens\).*--batch-size 64 needs about [\d.]+ GiB .*more than the wasm backend's 4 GiB \(32-bit memory\): use (--batch-size \d+ or less \(now 64\), or )?fewer tokens \(a larger --set patchSize=N/,
    );
    expect(() => checkTrainingMemory('convit_tiny', 'convit', { imgSize: [224, 224], patchSize: 16 }, 8, 'wasm')).not.toThrow();
    expect(() => checkTrainingMemory('convnextv2_atto', 'convnextv2', {}, 4096, 'wasm', [224, 224])).toThrow(/--batch-size \d+ or less \(now 4096\)/);
    // Fashion-MNIST's 28 px train ConvNeXt V2 at 32×32: batch 64 fits easily.
    expect(() => checkTrainingMemory('convnextv2_atto', 'convnextv2', { inChans: 1, numClasses: 10 }, 64, 'wasm', [32, 32])).not.toThrow();
  });
});

describe('softbias (real processes)', () => {
  it('a usage error exits 2 with the message on stderr; --help exits 0', async () => {
    const bad = await cli(['train', '--model', 'convit_tiny', '--runs', '3']);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toMatch(/^softbias: train does not take --runs/);
    const help = await cli(['bench', '--help']);
    expect(help.code, help.stderr).toBe(0);
    expect(help.stdout).toMatch(/--batch B\[,B…\]/);
  }, 60_000);

  it('export to a FIFO is refused at once (it used to block until a reader came)', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'softbias-fifo-'));
    const fifo = join(dir, 'out.onnx');
    execFileSync('mkfifo', [fifo]);
    const weights = join(dir, 'w.safetensors');
    writeFileSync(weights, serializeSafetensors({ w: { shape: [1], data: new Float32Array(1) } }));
    const r = await cli(['export', weights, fifo], 30_000);
    expect(r.killed).toBe(false);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/is a FIFO \(named pipe\), not a regular file/);
  }, 60_000);

  it('train --data folder on 224-px images: patch 14 (256 tokens), and a batch that cannot fit is refused naming --batch-size', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'softbias-224-'));
    for (const split of ['train', 'test']) {
      for (const cls of ['a', 'b']) {
        mkdirSync(join(dir, split, cls), { recursive: true });
        const samples = new Uint8Array(224 * 224 * 3).map((_, i) => (i * 7 + cls.charCodeAt(0)) & 255);
        writeFileSync(join(dir, split, cls, 'x.png'), encodePng({ width: 224, height: 224, colorType: 2, depth: 8, samples }));
      }
    }
    const out = join(dir, 'out');
    const r = await cli(['train', '--model', 'convit_tiny', '--data', 'folder', '--data-dir', dir, '--batch-size', '100000', '--backend', 'cpu', '--progress', 'none', '--out', out], 60_000);
    expect(r.code, r.stdout).toBe(1);
    expect(r.stderr).toMatch(/convit_tiny at 224×224 with patchSize 14 \(256 tokens\).*--batch-size 100000 needs about [\d.]+ GiB .*: use --batch-size \d+ or less \(now 100000\)/);
    expect(r.stderr).not.toMatch(/memory access out of bounds/);
    expect(existsSync(join(out, 'checkpoint.safetensors'))).toBe(false);
  }, 90_000);
});
