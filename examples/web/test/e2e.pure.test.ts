/**
 * End to end: build the demo (vite build), serve it on 127.0.0.1, drive Debian's headless Chromium through
 * playwright-core with WebGPU on SwiftShader, load a small ConViT (the convit_micro fixture weights, saved with
 * saveWeights) from a URL and an image from a file input, and check the page against a Node run (cpu) of the
 * same weights and image: same top-1, logits within 1e-3·max|logit|, same gates, same attention maps for a
 * clicked patch. Saves a screenshot to examples/web/test-results/.
 *
 * Then, on wasm (Node's reference on wasm too, compared within the tolerance rule, test-utils' defaultAtol):
 * the page opened bare loads the shipped Fashion-MNIST ConViT and classifies the first sample: its top-5 shows
 * Fashion-MNIST names, and its logits equal Node's on the same image; a clicked sample likewise. The FCMAE tab
 * runs 3 pre-training steps in its Worker (fit with FCMAE's loss) on the built-in picture: each step's loss, then
 * the trained model's reconstruction, loss and per-patch loss equal Node's `fcmaePretrain` + `fcmaeView`; the
 * Worker's tensor count is the same after each step.
 * With SOFTBIAS_UPDATE_DOCS=1 it refreshes the README's screenshots (examples/web/docs/classify.png, docs/fcmae.png);
 * otherwise they go to test-results/ beside the others.
 *
 * `*.pure.test.ts`: runs once (vitest project cpu), not once per backend. Needs /usr/bin/chromium (or
 * CHROMIUM_PATH); without it the test is skipped, except in CI (CI=true), where it fails.
 */
import { describe, it, expect } from 'vitest';
import * as tf from '@tensorflow/tfjs-core';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { defaultAtol, loadFixture, repoRoot } from '@softbias/test-utils';
import { CHROMIUM_ARGS, chromiumPath, serveStatic, watchPage } from '../../../test-utils/browser.js';
import { encodePng as encodePngSpec } from '../../../packages/data/test/png-writer.js';
import { createModel, loadModel } from '@softbias/models-convit';
import { setupBackend } from '@softbias/tensor-ops';
import { decodePng, FASHION_MNIST_CLASSES } from '@softbias/data';
import type { DemoState } from '../src/main.js';
import { classify, loadDemoModel, preprocessFor } from '../src/demo-model.js';
import { samplePicture, type FcmaeState } from '../src/fcmae-page.js';
import { fcmaeInput, fcmaePretrain, fcmaeView, loadFcmaeBytes, randomFcmae, trainingImage, type FcmaeView } from '../src/fcmae-view.js';

const appDir = fileURLToPath(new URL('..', import.meta.url));
const chromiumExe = chromiumPath();
const haveChromium = existsSync(chromiumExe);
const inCi = process.env.CI === 'true';

// ---------------------------------------------------------------------------------------- a PNG (data's test writer)

/** An 8-bit RGB PNG (no gamma or colour-profile chunks, so a browser decodes exactly these values). */
const encodePng = (rgb: Uint8Array, width: number, height: number): Uint8Array =>
  encodePngSpec({ width, height, colorType: 2, depth: 8, samples: rgb });

/** A 64×48 test picture: a sky gradient, a sun, striped ground (non-square: the eval transform resizes and crops). */
function picture(width = 64, height = 48): Uint8Array {
  const rgb = new Uint8Array(width * height * 3);
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) {
      const i = (y * width + x) * 3;
      let c: [number, number, number];
      if (y > height * 0.62) c = (Math.floor(x / 5) + Math.floor(y / 3)) % 2 ? [60, 140, 50] : [90, 170, 70];
      else if ((x - 44) ** 2 + (y - 13) ** 2 < 64) c = [250, 210, 60];
      else c = [80 + y * 2, 130 + y * 2, 230 - x];
      rgb.set(c, i);
    }
  }
  return rgb;
}

// ------------------------------------------------------------------------- Node's references on wasm

const publicDir = join(appDir, 'public');
const FCMAE_STEPS = 3;

/** Run `f` on Node's wasm backend (the page's), then go back to this project's backend. */
async function onWasm<T>(f: () => Promise<T>): Promise<T> {
  const before = tf.getBackend();
  await setupBackend('wasm', { threads: 1 });
  try {
    return await f();
  } finally {
    await tf.setBackend(before);
  }
}

/** A sample PNG as the browser hands it to the page: RGBA (a grey PNG decodes to R = G = B). */
async function sampleRgba(file: string): Promise<{ data: Uint8ClampedArray; width: number; height: number }> {
  const png = await decodePng(new Uint8Array(readFileSync(join(publicDir, file))));
  const c = png.channels;
  const data = new Uint8ClampedArray(png.width * png.height * 4);
  for (let i = 0; i < png.width * png.height; i++) {
    for (let k = 0; k < 3; k++) data[4 * i + k] = png.data[i * c + (c < 3 ? 0 : k)]!;
    data[4 * i + 3] = 255;
  }
  return { data, width: png.width, height: png.height };
}

/** The shipped model's logits on each sample file, and the FCMAE tab's 3 pre-training steps and the view after. */
async function wasmReferences(files: string[]): Promise<{ logits: Map<string, number[]>; fcmae: { losses: number[]; view: FcmaeView } }> {
  return onWasm(async () => {
    const dm = await loadDemoModel(new Uint8Array(readFileSync(join(publicDir, 'models/fashion-mnist-convit.safetensors'))));
    const logits = new Map<string, number[]>();
    try {
      for (const f of files) {
        const x = preprocessFor(dm, await sampleRgba(f));
        logits.set(f, Array.from((await classify(dm, x)).logits));
        x.dispose();
      }
    } finally {
      dm.model.dispose();
    }
    // The page's FCMAE tab: the random model (seed 0), the built-in picture, the slider's 60 %, seed 0, lr 1e-3.
    const m0 = randomFcmae(0);
    const weights = await m0.saveWeights();
    m0.dispose();
    const r = await fcmaePretrain({ weights, images: trainingImage(samplePicture(), 128), count: 1, steps: FCMAE_STEPS, lr: 1e-3, ratio: 0.6, seed: 0 });
    const trained = await loadFcmaeBytes(r.weights);
    const x = fcmaeInput(trained, samplePicture());
    try {
      return { logits, fcmae: { losses: r.losses, view: await fcmaeView(trained, x, 0.6, 0) } };
    } finally {
      x.dispose();
      trained.dispose();
    }
  });
}

// -------------------------------------------------------------------------------------------------- test

describe('examples/web in headless Chromium (WebGPU on SwiftShader)', () => {
  it.skipIf(!haveChromium && !inCi)(
    `classifies like the Node run and shows gates and attention maps${haveChromium ? '' : ` [skipped: no Chromium at ${chromiumExe}]`}`,
    async () => {
      if (!haveChromium) throw new Error(`CI: no Chromium at ${chromiumExe} (apt-get install chromium)`);
      const work = mkdtempSync(join(tmpdir(), 'softbias-web-e2e-'));
      // Undone in reverse order whatever fails (a failed vite build or browser launch included).
      const cleanup: (() => unknown)[] = [];
      try {
        // The model: convit_micro's reference weights in a createModel-built ConViT, saved with its config.
        const fx = loadFixture('convit_micro');
        const c = fx.config;
        const built = createModel('convit_tiny', {
          imgSize: c.img_size,
          patchSize: c.patch_size,
          embedDim: c.embed_dim,
          depth: c.depth,
          numHeads: c.num_heads,
          localUpToLayer: c.local_up_to_layer,
          numClasses: c.num_classes,
        });
        built.loadStateDict(fx.weights);
        const weights = await built.saveWeights();
        built.dispose();

        // The Node run (this project's backend: cpu) on the same bytes and pixels.
        const w = 64;
        const h = 48;
        const pixels = picture(w, h);
        const ref = await loadModel(weights);
        cleanup.push(() => ref.dispose());
        const x = ref.preprocess({ data: pixels, width: w, height: h, channels: 3 });
        const logitsT = ref.forward(x);
        cleanup.push(() => tf.dispose([x, logitsT]));
        const nodeLogits = Array.from((await logitsT.data()) as Float32Array);
        const nodeGates = (await ref.gates()).map((g) => (g ? Array.from(g) : null));
        const maxLogit = Math.max(...nodeLogits.map(Math.abs));
        const samples = JSON.parse(readFileSync(join(publicDir, 'samples/samples.json'), 'utf8')) as { file: string; label: string }[];
        const clickedSample = samples[9]!;
        const wasmRef = await wasmReferences([samples[0]!.file, clickedSample.file]);
        const top1 = (a: number[]) => a.indexOf(Math.max(...a));
        const worstDiff = (logits: number[]) => Math.max(...logits.map((v, i) => Math.abs(v - nodeLogits[i]!)));

        // Build the app and serve it with the weights beside it.
        const outDir = join(work, 'dist');
        const vite = spawnSync(process.execPath, [join(repoRoot, 'node_modules/vite/bin/vite.js'), 'build', '--outDir', outDir, '--logLevel', 'warn'], {
          cwd: appDir,
          encoding: 'utf8',
        });
        expect(vite.status, `vite build failed:\n${vite.stdout}\n${vite.stderr}`).toBe(0);
        writeFileSync(join(outDir, 'convit-micro.safetensors'), weights);
        const imagePath = join(work, 'picture.png');
        writeFileSync(imagePath, encodePng(pixels, w, h));
        const server = await serveStatic({ '/': outDir });
        cleanup.push(() => server.server.close());

        const { chromium } = await import('playwright-core');
        const browser = await chromium.launch({
          executablePath: chromiumExe,
          headless: true,
          args: CHROMIUM_ARGS,
        });
        cleanup.push(() => browser.close());
        const shots = join(appDir, 'test-results');
        mkdirSync(shots, { recursive: true });
        const page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
        try {
          const { logs, state, until } = watchPage<DemoState>(page, 'softbiasDemo', 90_000);

          // Weights from a URL (the ?weights= parameter fills the URL field and loads it), image from the file input.
          await page.goto(`${server.origin}/index.html?backend=webgpu&weights=convit-micro.safetensors`);
          const ready = await until('loading the model', (s) => s.state === 'ready' && s.model !== null);
          expect(ready.backend?.backend).toBe('webgpu');
          await page.setInputFiles('#image-file', imagePath);
          const done = await until('classifying', (s) => s.state === 'done');

          const logits = done.logits!;
          expect(logits).toHaveLength(nodeLogits.length);
          const worst = worstDiff(logits);
          console.log(
            `examples/web e2e: ${done.backend?.backend} in Chromium (${done.backend?.adapter ?? 'no adapter'}) vs Node cpu: ` +
              `max |Δ logit| ${worst.toExponential(2)} (max |logit| ${maxLogit.toFixed(3)}, bound ${(1e-3 * maxLogit).toExponential(2)})`,
          );
          expect(worst, `max |browser − Node| logit difference (max |logit| ${maxLogit})`).toBeLessThanOrEqual(1e-3 * maxLogit);
          expect(top1(logits)).toBe(top1(nodeLogits));
          expect(done.top5![0]!.index).toBe(top1(nodeLogits));
          for (let l = 0; l < nodeGates.length; l++) {
            if (nodeGates[l] === null) expect(done.gates![l]).toBeNull();
            else for (let k = 0; k < nodeGates[l]!.length; k++) expect(Math.abs(done.gates![l]![k]! - nodeGates[l]![k]!)).toBeLessThan(1e-5);
          }

          // Click patch (2, 5) of the 8×8 grid: every layer's heads redraw for it.
          const [rows, cols] = ref.gridSize;
          const box = (await page.locator('#input').boundingBox())!;
          await page.mouse.click(box.x + ((5 + 0.5) * box.width) / cols, box.y + ((2 + 0.5) * box.height) / rows);
          const clicked = await until('clicking a patch', (s) => s.selected?.[0] === 2 && s.selected?.[1] === 5);
          expect(clicked.heatmaps).toBe(c.depth * c.num_heads);
          expect(await page.locator('#attention canvas').count()).toBe(c.depth * c.num_heads);
          expect(clicked.attention.map((a) => a.kind)).toEqual(['gpsa', 'gpsa', 'gpsa', 'mhsa']);
          for (const a of clicked.attention) {
            const want = ref.attentionMap(x, a.layer, { row: 2, col: 5 });
            const wantData = (await want.data()) as Float32Array;
            want.dispose();
            const n = rows * cols;
            a.heads.forEach((map, head) => {
              const diff = Math.max(...map.map((v, i) => Math.abs(v - wantData[head * n + i]!)));
              expect(diff, `block ${a.layer} head ${head}: attention of patch (2, 5)`).toBeLessThan(1e-4);
            });
          }

          await page.screenshot({ path: join(shots, 'e2e-webgpu.png'), fullPage: true });

          // The page's default (`auto`) never picks a CPU-emulated adapter: it falls back to wasm, same answer.
          await page.goto(`${server.origin}/index.html?weights=convit-micro.safetensors`);
          const fallback = await until('loading the model with backend auto', (s) => s.state === 'ready' && s.model !== null);
          expect(fallback.backend?.backend).toBe('wasm');
          await page.setInputFiles('#image-file', imagePath);
          const wasmDone = await until('classifying on the wasm fallback', (s) => s.state === 'done');
          expect(top1(wasmDone.logits!)).toBe(top1(nodeLogits));
          expect(worstDiff(wasmDone.logits!)).toBeLessThanOrEqual(1e-3 * maxLogit);

          // wasm with 2 threads in the (cross-origin-isolated) page: tfjs' half-of-hardwareConcurrency cap is lifted,
          // and softbias' kernels share the threaded build's memory; same answer.
          await page.goto(`${server.origin}/index.html?backend=wasm&threads=2&weights=convit-micro.safetensors`);
          const mt = await until('loading the model on wasm with 2 threads', (s) => s.state === 'ready' && s.model !== null);
          expect(mt.backend?.backend).toBe('wasm');
          expect(mt.backend?.threads).toBe(2);
          await page.setInputFiles('#image-file', imagePath);
          const mtDone = await until('classifying on wasm with 2 threads', (s) => s.state === 'done');
          expect(top1(mtDone.logits!)).toBe(top1(nodeLogits));
          expect(worstDiff(mtDone.logits!)).toBeLessThanOrEqual(1e-3 * maxLogit);

          // Opened bare (wasm): the shipped Fashion-MNIST ConViT on the first sample, Fashion-MNIST names in its top-5,
          // the logits as Node's on wasm; then a clicked sample.
          await page.goto(`${server.origin}/index.html?backend=wasm`);
          const names = [...FASHION_MNIST_CLASSES] as string[];
          const checkSample = (s: DemoState, file: string) => {
            const want = wasmRef.logits.get(file)!;
            expect(s.model).toMatch(/convit_fmnist: 28×28 input/);
            expect(s.top5!.map((p) => p.label).every((l) => names.includes(l)), `top-5 names ${s.top5!.map((p) => p.label)}`).toBe(true);
            expect(s.top5![0]!.label).toBe(names[top1(want)]);
            const worst = Math.max(...s.logits!.map((v, i) => Math.abs(v - want[i]!)));
            expect(worst, `${file}: max |page − Node| logit`).toBeLessThanOrEqual(defaultAtol(want));
          };
          const opened = await until('the shipped model on the first sample', (s) => s.state === 'done' && s.sample === 'samples/0-t-shirt-top.png');
          expect(opened.sample).toBe(samples[0]!.file);
          checkSample(opened, samples[0]!.file);
          await page.locator(`#samples button[data-file="${clickedSample.file}"]`).click();
          const clicked2 = await until(`clicking the ${clickedSample.label} sample`, (s) => s.state === 'done' && s.sample === 'samples/9-ankle-boot.png');
          expect(clicked2.sample).toBe(clickedSample.file);
          checkSample(clicked2, clickedSample.file);
          console.log(`examples/web e2e: shipped model on ${clickedSample.file}: top-5 ${clicked2.top5!.map((p) => `${p.label} ${(100 * p.probability).toFixed(0)}%`).join(', ')}`);
          // The README's screenshots go to docs/ only when asked (SOFTBIAS_UPDATE_DOCS=1): a test run leaves the tree clean.
          const docs = process.env['SOFTBIAS_UPDATE_DOCS'] ? join(appDir, 'docs') : shots;
          mkdirSync(docs, { recursive: true });
          // The README's screenshots: the whole page in one viewport (the fixed footer at its foot, not over the content).
          const docShot = async (name: string) => {
            const height = await page.evaluate(() => document.documentElement.scrollHeight);
            await page.setViewportSize({ width: 1280, height });
            await page.screenshot({ path: join(docs, name) });
            await page.setViewportSize({ width: 1280, height: 900 });
          };
          await docShot('classify.png');

          // The FCMAE tab: 3 pre-training steps in its Worker (wasm), each step's loss and the trained model's view as Node's.
          await page.goto(`${server.origin}/index.html?backend=wasm&tab=fcmae`);
          const fcUntil = async (what: string, ok: string, ms = 60_000): Promise<FcmaeState> => {
            try {
              await page.waitForFunction(
                `window.softbiasFcmae && (window.softbiasFcmae.state === 'error' || window.softbiasFcmae.pretrain.state === 'error' || (${ok}))`,
                undefined,
                { timeout: ms },
              );
            } catch (e) {
              throw new Error(`${what}: ${(e as Error).message}\npage log:\n${logs.join('\n')}`);
            }
            const f = await page.evaluate(() => window.softbiasFcmae);
            if (f.state === 'error' || f.pretrain.state === 'error') throw new Error(`${what}: the page reports: ${f.error ?? f.pretrain.error}`);
            return f;
          };
          await fcUntil('the FCMAE tab', `window.softbiasFcmae.state === 'done'`);
          await page.locator('#fc-steps').fill(String(FCMAE_STEPS));
          await page.locator('#fc-train').click();
          const t0 = performance.now();
          const f = await fcUntil('FCMAE pre-training steps', `window.softbiasFcmae.pretrain.runs === 1 && window.softbiasFcmae.state === 'done'`);
          const want = wasmRef.fcmae;
          console.log(
            `examples/web e2e: FCMAE ${FCMAE_STEPS} steps in the page's Worker (${f.pretrain.backend}, ${((performance.now() - t0) / 1000).toFixed(1)} s): ` +
              `losses ${f.pretrain.losses.map((l) => l.toFixed(5)).join(' ')} vs Node ${want.losses.map((l) => l.toFixed(5)).join(' ')}`,
          );
          expect(f.pretrain.backend).toBe('wasm');
          expect(f.pretrain.losses).toHaveLength(FCMAE_STEPS);
          expect(new Set(f.pretrain.stepTensors).size, `Worker tensors after each step: ${f.pretrain.stepTensors}`).toBe(1);
          for (const [i, l] of want.losses.entries()) expect(Math.abs(f.pretrain.losses[i]! - l), `step ${i + 1} loss`).toBeLessThanOrEqual(defaultAtol([l]));
          expect(f.model).toMatch(/\+ 3 pre-training steps in the page/);
          expect(f.removed).toBe(want.view.removed);
          expect(Math.abs(f.loss! - want.view.loss)).toBeLessThanOrEqual(defaultAtol([want.view.loss]));
          const worstPatch = Math.max(...f.perPatch!.map((v, l) => Math.abs(v - want.view.perPatch[l]!)));
          expect(worstPatch, 'per-patch loss after training').toBeLessThanOrEqual(defaultAtol(want.view.perPatch));
          expect(f.reconstruction).toHaveLength(want.view.reconstruction.length);
          const worstPixel = Math.max(...f.reconstruction!.map((v, i) => Math.abs(v - want.view.reconstruction[i]!)));
          expect(worstPixel, 'reconstruction after training').toBeLessThanOrEqual(defaultAtol(want.view.reconstruction));
          await docShot('fcmae.png');
        } catch (e) {
          // What the page showed when it failed, for the CI log's reader.
          await page.screenshot({ path: join(shots, 'e2e-failure.png'), fullPage: true }).catch(() => undefined);
          throw e;
        }
      } finally {
        for (const undo of cleanup.reverse()) await undo();
        rmSync(work, { recursive: true, force: true });
      }
    },
    180_000,
  );
});
