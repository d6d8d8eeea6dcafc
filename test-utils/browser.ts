/**
 * Headless Chromium for the browser tests and benchmarks (Debian's binary driven by playwright-core, never a
 * downloaded browser): its path, the flags that enable WebGPU on SwiftShader, and a static server on 127.0.0.1
 * (a secure context, cross-origin isolated so threaded wasm can use SharedArrayBuffer). No vitest import:
 * benchmarks/ bundles this file too.
 */
import { createServer, type Server } from 'node:http';
import { existsSync, readFileSync, statSync } from 'node:fs';
import { extname, join, normalize } from 'node:path';
import type { AddressInfo } from 'node:net';

export const CHROMIUM_ARGS = [
  '--no-sandbox',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
  '--no-first-run',
  '--enable-unsafe-webgpu',
  '--use-webgpu-adapter=swiftshader',
];

const TYPES: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.mjs': 'text/javascript; charset=utf-8',
  '.wasm': 'application/wasm',
  '.json': 'application/json',
  '.css': 'text/css; charset=utf-8',
  '.png': 'image/png',
  '.safetensors': 'application/octet-stream',
};

/** Serve `routes` (URL prefix → folder) on 127.0.0.1 with cross-origin isolation headers. */
export async function serveStatic(routes: Record<string, string>): Promise<{ server: Server; origin: string }> {
  const server = createServer((req, res) => {
    const url = new URL(req.url ?? '/', 'http://127.0.0.1');
    if (url.pathname === '/favicon.ico') {
      res.writeHead(204).end();
      return;
    }
    let path = decodeURIComponent(url.pathname);
    if (path.endsWith('/')) path += 'index.html';
    const prefix = Object.keys(routes)
      .sort((a, b) => b.length - a.length)
      .find((p) => path.startsWith(p));
    const file = prefix !== undefined ? normalize(join(routes[prefix]!, path.slice(prefix.length))) : '';
    if (!prefix || !file.startsWith(normalize(routes[prefix]!)) || !existsSync(file) || !statSync(file).isFile()) {
      res.writeHead(404).end('not found');
      return;
    }
    res.writeHead(200, {
      'content-type': TYPES[extname(file)] ?? 'application/octet-stream',
      'cross-origin-opener-policy': 'same-origin',
      'cross-origin-embedder-policy': 'require-corp',
      'cross-origin-resource-policy': 'same-origin',
      'cache-control': 'no-store',
    });
    res.end(readFileSync(file));
  });
  await new Promise<void>((ok) => server.listen(0, '127.0.0.1', ok));
  const { port } = server.address() as AddressInfo;
  return { server, origin: `http://127.0.0.1:${port}` };
}

/** Debian's chromium, or CHROMIUM_PATH. */
export function chromiumPath(): string {
  return process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';
}

/** What the example pages publish on `window` for the tests: a state name, and the message when it is 'error'. */
export interface PageState {
  state: string;
  error?: string | null;
}

/** The parts of a playwright `Page` that `watchPage` uses. */
interface WatchedPage {
  on(event: 'console', fn: (m: { text(): string }) => void): unknown;
  on(event: 'pageerror', fn: (e: Error) => void): unknown;
  evaluate<R, A>(fn: (arg: A) => R, arg: A): Promise<R>;
  waitForFunction<A>(fn: (arg: A) => unknown, arg: A, opts: { timeout: number }): Promise<unknown>;
}

/**
 * Watch a page that publishes its state as `window[global]`: its console and errors are kept in `logs`;
 * `state()` reads the state; `until(what, ok, ms)` waits for `ok(state)` (a function the page evaluates, so it may
 * use only its argument) and fails, with the page log, on a timeout or when the page reports an error.
 */
export function watchPage<S extends PageState>(page: WatchedPage, global: string, defaultMs: number) {
  const logs: string[] = [];
  page.on('console', (m) => logs.push(m.text()));
  page.on('pageerror', (e) => logs.push(`page error: ${e.message}`));
  const state = (): Promise<S> => page.evaluate((g: string) => (window as unknown as Record<string, S>)[g]!, global);
  const until = async (what: string, ok: (s: S) => boolean, ms = defaultMs): Promise<S> => {
    try {
      await page.waitForFunction(
        ([g, okSrc]: readonly [string, string]) => {
          const s = (window as unknown as Record<string, PageState | undefined>)[g];
          return s && (s.state === 'error' || new Function('s', `return (${okSrc})(s)`)(s));
        },
        [global, ok.toString()] as const,
        { timeout: ms },
      );
    } catch (e) {
      throw new Error(`${what}: ${(e as Error).message}\npage log:\n${logs.join('\n')}`);
    }
    const s = await state();
    if (s.state === 'error') throw new Error(`${what}: the page reports: ${s.error}\npage log:\n${logs.join('\n')}`);
    return s;
  };
  return { logs, state, until };
}
