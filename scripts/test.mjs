#!/usr/bin/env node
// The README's test command (`npm test`): every spec on every backend (vitest projects cpu, wasm, webgpu),
// then the parity report (worst error per backend), the reductions that applied, the skipped count, and one closing
// line `N passed, N failed` (a failing beforeAll / describe body counts its tests as failed, not skipped).
//
// WebGPU in Node runs on Dawn; without a GPU it needs a CPU Vulkan driver. When VK_ICD_FILENAMES is unset we
// point it at Debian chromium's SwiftShader (`apt-get install chromium libvulkan1`). In CI (CI=true) a missing
// adapter fails the webgpu project; elsewhere its specs skip and say how to get one.
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { countResults } from './count-results.mjs';

const root = fileURLToPath(new URL('..', import.meta.url));
const env = { ...process.env };
const swiftshader = '/usr/lib/chromium/vk_swiftshader_icd.json';
if (!env.VK_ICD_FILENAMES && existsSync(swiftshader)) env.VK_ICD_FILENAMES = swiftshader;
if (!env.XDG_RUNTIME_DIR || !existsSync(env.XDG_RUNTIME_DIR)) env.XDG_RUNTIME_DIR = mkdtempSync(join(tmpdir(), 'xdg-'));

const tmp = join(root, '.tmp');
mkdirSync(tmp, { recursive: true });
rmSync(join(tmp, 'worst-errors.jsonl'), { force: true });
const jsonOut = join(tmp, 'vitest.json');
rmSync(jsonOut, { force: true });
rmSync(join(tmp, 'reductions.jsonl'), { force: true });

const extra = process.argv.slice(2);
const vitest = spawnSync(
  process.execPath,
  [join(root, 'node_modules/vitest/vitest.mjs'), 'run', '--reporter=default', '--reporter=json', `--outputFile.json=${jsonOut}`, ...extra],
  { cwd: root, env, stdio: 'inherit' },
);

let passed = 0;
let failed = 0;
let skipped = 0;
let failedFiles = [];
if (existsSync(jsonOut)) {
  const c = countResults(JSON.parse(readFileSync(jsonOut, 'utf8')), root);
  ({ passed, failed, skipped, failedFiles } = c);
} else {
  failed += 1;
}
if (vitest.status !== 0 && failed === 0) failed += 1;
// Checks .ci/run ran before the tests (kernel build check, typecheck, lint): each one is one pass or one failure.
const prePassed = Number(process.env.SOFTBIAS_PRECHECKS_PASSED ?? 0) || 0;
const preFailed = Number(process.env.SOFTBIAS_PRECHECKS_FAILED ?? 0) || 0;
if (prePassed + preFailed > 0) console.log(`\nPre-checks (.ci/run): ${prePassed} passed, ${preFailed} failed (counted below)`);
passed += prePassed;
failed += preFailed;

const worstFile = join(tmp, 'worst-errors.jsonl');
if (existsSync(worstFile)) {
  const worst = new Map();
  for (const line of readFileSync(worstFile, 'utf8').split('\n')) {
    if (!line) continue;
    const e = JSON.parse(line);
    const ratio = e.atol > 0 ? e.diff / e.atol : e.diff;
    const w = worst.get(e.backend);
    if (!w || ratio > w.ratio) worst.set(e.backend, { ...e, ratio });
  }
  console.log('\nParity: worst error per backend (|a-b| against its tolerance)');
  for (const [b, w] of [...worst].sort()) {
    console.log(`  ${b.padEnd(7)} ${w.diff.toExponential(2)} (atol ${w.atol.toExponential(2)}, ${(100 * w.ratio).toFixed(1)}% of it) ${w.label}`);
  }
}
const reductionsFile = join(tmp, 'reductions.jsonl');
if (existsSync(reductionsFile)) {
  const seen = new Set();
  for (const line of readFileSync(reductionsFile, 'utf8').split('\n')) {
    if (!line) continue;
    const e = JSON.parse(line);
    seen.add(`${e.backend}: ${e.id}`);
  }
  console.log(`\n${seen.size} reduced (run with less work on that backend; see REDUCTIONS in vitest.exclusions.ts)`);
  for (const k of [...seen].sort()) console.log(`  ${k}`);
}
if (failedFiles.length) console.log(`\nFailed files (tests counted as failed): ${failedFiles.join(', ')}`);
console.log(`${skipped} skipped (excluded on this backend or no adapter here; see vitest.exclusions.ts)`);
console.log(`${passed} passed, ${failed} failed`);
process.exit(failed > 0 ? 1 : 0);
