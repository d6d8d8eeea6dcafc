/**
 * Runs the suite in Debian's headless Chromium through playwright-core (never a downloaded browser): a tiny
 * static server on 127.0.0.1 (a secure context; cross-origin isolated, so threaded wasm can use
 * SharedArrayBuffer) serves the page bundle, tfjs-backend-wasm's .wasm files and the prepared assets; each
 * backend gets a fresh browser context.
 */
import { existsSync } from 'node:fs';
import { CHROMIUM_ARGS, chromiumPath, serveStatic } from '../../test-utils/browser.js';
import type { BackendResult, BackendSpec, SuiteConfig } from './types.js';

export interface ChromiumSession {
  /** Run one backend configuration / part of the suite in a fresh browser context. */
  run(spec: BackendSpec, cfg: SuiteConfig, timeoutMs: number): Promise<BackendResult | { failed: string }>;
  close(): Promise<void>;
}

/** Start the static server and Chromium, or say why they cannot start. */
export async function openChromium(o: {
  webDir: string;
  wasmDir: string;
  assetsDir: string;
  log: (l: string) => void;
}): Promise<ChromiumSession | { unavailable: string }> {
  const exe = chromiumPath();
  if (!existsSync(exe)) return { unavailable: `no Chromium at ${exe} (Debian: apt-get install chromium; or set CHROMIUM_PATH)` };
  let chromium: typeof import('playwright-core').chromium;
  try {
    ({ chromium } = await import('playwright-core'));
  } catch (e) {
    return { unavailable: `playwright-core is not installed (${(e as Error).message.split('\n')[0]})` };
  }
  const { server, origin } = await serveStatic({ '/': o.webDir, '/wasm/': o.wasmDir, '/assets/': o.assetsDir });
  let browser: import('playwright-core').Browser;
  try {
    browser = await chromium.launch({ executablePath: exe, args: CHROMIUM_ARGS, headless: true });
  } catch (e) {
    server.close();
    return { unavailable: `Chromium did not start: ${(e as Error).message.split('\n')[0]}` };
  }
  return {
    async run(spec, cfg, timeoutMs) {
      const context = await browser.newContext();
      const page = await context.newPage();
      page.on('console', (m) => o.log(`  ${m.text().replace(/^\[bench\] /, '')}`));
      page.on('pageerror', (e) => o.log(`  [page error] ${e.message}`));
      let timer: NodeJS.Timeout | undefined;
      try {
        await page.goto(`${origin}/index.html`);
        await page.waitForFunction(() => typeof window.softbiasBench === 'function');
        const run = page.evaluate(([s, c]) => window.softbiasBench(s, c), [spec, cfg] as const);
        const timeout = new Promise<never>((_, reject) => {
          timer = setTimeout(() => reject(new Error(`timed out after ${Math.round(timeoutMs / 1000)} s`)), timeoutMs);
        });
        return await Promise.race([run, timeout]);
      } catch (e) {
        const why = `the page failed: ${(e as Error).message.split('\n')[0]}`;
        // Keep what the page measured before it stopped, when it can still answer.
        const partial = await Promise.race([
          page.evaluate(() => window.softbiasBenchPartial).catch(() => undefined),
          new Promise<undefined>((ok) => setTimeout(() => ok(undefined), 5000)),
        ]);
        if (!partial) return { failed: why };
        return { ...partial, stopped: `${why}${partial.running ? ` during "${partial.running}"` : ''}` };
      } finally {
        clearTimeout(timer);
        await context.close().catch(() => undefined);
      }
    },
    async close() {
      await browser.close().catch(() => undefined);
      server.close();
    },
  };
}
