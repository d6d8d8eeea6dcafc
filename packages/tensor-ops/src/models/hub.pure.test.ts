/**
 * The hub client against two real 127.0.0.1 servers (node:http) that reproduce the Hugging Face hub's
 * documented behaviour: the hub answers `HEAD/GET <repo>/resolve/main/<file>` of an LFS file with a 302 to
 * another host (the CDN) carrying X-Linked-Etag (sha256) and X-Linked-Size, a renamed repository with a
 * relative 307, a gated one with 401, a missing one with a 404 HTML page; the CDN honours Range (206, 416).
 * Faults: a body cut off half-way, a wrong hash, a stalled server; offline mode; a cache hit; HF_ENDPOINT.
 */
import { createHash } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync, mkdirSync } from 'node:fs';
import { type IncomingMessage, type Server, type ServerResponse, createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { serializeSafetensors } from '../safetensors.js';
import { BrowserCache, FolderCache } from './cache.js';
import { type HubOptions, HubError, hubDownload, hubEndpoint, hubUrl } from './hub.js';
import { sha256Hex, sha256Js } from './sha256.js';

const weights = serializeSafetensors({ w: { data: Float32Array.from({ length: 4096 }, (_, i) => Math.sin(i)), shape: [64, 64] } });
const sha = createHash('sha256').update(weights).digest('hex');
const configJson = Buffer.from(JSON.stringify({ architecture: 'toy', num_classes: 2, label_names: ['cat', 'dog'] }));

interface Seen {
  server: 'hub' | 'cdn';
  method: string;
  url: string;
  range: string | undefined;
  auth: string | undefined;
}
let seen: Seen[] = [];
let hub: Server;
let cdn: Server;
let hubBase = '';
let cdnBase = '';
let cutOnce = true;

function record(server: Seen['server'], req: IncomingMessage) {
  seen.push({ server, method: req.method ?? '', url: req.url ?? '', range: req.headers.range, auth: req.headers.authorization });
}

/** The CDN: `/blobs/<name>` with Range support; `/cut/…` drops the first response half-way; `/stall` never finishes. */
function serveCdn(req: IncomingMessage, res: ServerResponse) {
  record('cdn', req);
  const url = req.url ?? '';
  if (url === '/stall') {
    res.writeHead(200, { 'content-length': weights.length });
    res.write(weights.subarray(0, 64)); // then nothing
    return;
  }
  const size = weights.length;
  const m = /^bytes=(\d+)-$/.exec(req.headers.range ?? '');
  if (m) {
    const start = Number(m[1]);
    if (start >= size) {
      res.writeHead(416, { 'content-range': `bytes */${size}` });
      res.end();
      return;
    }
    res.writeHead(206, { 'content-length': size - start, 'content-range': `bytes ${start}-${size - 1}/${size}`, 'accept-ranges': 'bytes' });
    res.end(req.method === 'HEAD' ? undefined : weights.subarray(start));
    return;
  }
  res.writeHead(200, { 'content-length': size, 'content-type': 'application/octet-stream', 'accept-ranges': 'bytes' });
  if (req.method === 'HEAD') return void res.end();
  if (url.startsWith('/cut/') && cutOnce) {
    cutOnce = false;
    res.write(weights.subarray(0, 3000), () => res.socket?.destroy());
    return;
  }
  res.end(weights);
}

function lfs(res: ServerResponse, to: string, headers: Record<string, string | number> = { 'x-linked-etag': `"${sha}"`, 'x-linked-size': weights.length }) {
  res.writeHead(302, { location: `${cdnBase}${to}`, ...headers });
  res.end();
}

/** The hub: `/<owner>/<name>/resolve/main/<file>`. */
function serveHub(req: IncomingMessage, res: ServerResponse) {
  record('hub', req);
  const m = /^\/([^/]+\/[^/]+)\/resolve\/main\/(.+)$/.exec(req.url ?? '');
  const repo = m?.[1];
  const file = m?.[2];
  if (repo === 'timm/renamed') {
    res.writeHead(307, { location: `/timm/toy.ok/resolve/main/${file}` });
    return void res.end();
  }
  if (repo === 'timm/gated') {
    res.writeHead(401, { 'x-error-code': 'GatedRepo', 'x-error-message': 'Access to model timm/gated is restricted.' });
    return void res.end();
  }
  if (repo === 'timm/nohead' && file === 'model.safetensors') {
    if (req.method === 'HEAD') {
      res.writeHead(405, { allow: 'GET' });
      return void res.end();
    }
    res.writeHead(200, { 'content-length': weights.length });
    return void res.end(weights);
  }
  if (repo === 'timm/toy.ok' && file === 'config.json') {
    res.writeHead(200, { 'content-length': configJson.length, etag: '"0123456789abcdef0123456789abcdef01234567"' });
    return void res.end(req.method === 'HEAD' ? undefined : configJson);
  }
  if (file === 'model.safetensors') {
    if (repo === 'timm/toy.ok') return lfs(res, `/blobs/${sha}`);
    if (repo === 'timm/cut') return lfs(res, `/cut/${sha}`);
    if (repo === 'timm/badhash') return lfs(res, '/blobs/x', { 'x-linked-etag': `"${'0'.repeat(64)}"`, 'x-linked-size': weights.length });
    if (repo === 'timm/nosize') return lfs(res, '/blobs/y', {});
    if (repo === 'timm/slow') return lfs(res, '/stall', {});
  }
  const page = '<!DOCTYPE html><html><body><h1>404</h1><p>Sorry, we can’t find the page you are looking for.</p></body></html>';
  res.writeHead(404, { 'content-type': 'text/html; charset=utf-8', 'content-length': Buffer.byteLength(page), 'x-error-code': 'RepoNotFound' });
  res.end(req.method === 'HEAD' ? undefined : page);
}

async function listen(s: Server): Promise<string> {
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', () => r()));
  return `http://127.0.0.1:${(s.address() as AddressInfo).port}`;
}

let dirs: string[] = [];
function freshCache(): string {
  const d = mkdtempSync(join(tmpdir(), 'softbias-hub-'));
  dirs.push(d);
  return d;
}
const savedEnv = { ...process.env };

beforeAll(async () => {
  hub = createServer(serveHub);
  cdn = createServer(serveCdn);
  hubBase = await listen(hub);
  cdnBase = await listen(cdn);
});
afterEach(() => {
  seen = [];
  for (const k of ['HF_ENDPOINT', 'SOFTBIAS_HUB_URL', 'SOFTBIAS_OFFLINE', 'SOFTBIAS_CACHE', 'XDG_CACHE_HOME', 'HF_TOKEN']) {
    if (savedEnv[k] === undefined) delete process.env[k];
    else process.env[k] = savedEnv[k];
  }
});
afterAll(async () => {
  for (const s of [hub, cdn]) {
    s.closeAllConnections();
    await new Promise((r) => s.close(r));
  }
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
  dirs = [];
});

async function failure(p: Promise<unknown>): Promise<HubError> {
  const e = await p.then(
    () => undefined,
    (err: unknown) => err,
  );
  expect(e).toBeInstanceOf(HubError);
  return e as HubError;
}

const opts = (cache: string, more: HubOptions = {}): HubOptions => ({ endpoint: hubBase, cache, timeoutMs: 5000, ...more });

describe('hubDownload', () => {
  it('follows the 302 to another host, verifies X-Linked-Etag / X-Linked-Size, caches atomically, reports progress', async () => {
    const cache = freshCache();
    const progress: { loaded: number; total: number | undefined; file: string }[] = [];
    const got = await hubDownload('timm/toy.ok', 'model.safetensors', opts(cache, { token: 'hf_secret', onProgress: (p) => progress.push(p) }));
    expect(got.fromCache).toBe(false);
    expect(Buffer.from(got.bytes).equals(Buffer.from(weights))).toBe(true);
    const path = join(cache, 'hub', 'timm', 'toy.ok', 'main', 'model.safetensors');
    expect(readFileSync(path).equals(Buffer.from(weights))).toBe(true);
    expect(existsSync(`${path}.incomplete`)).toBe(false);
    expect(progress.at(-1)).toEqual({ loaded: weights.length, total: weights.length, file: 'model.safetensors' });
    expect(seen.map((s) => `${s.server} ${s.method}`)).toEqual(['hub HEAD', 'cdn GET']);
    // The token goes to the hub, not to the CDN the redirect points at.
    expect(seen[0]!.auth).toBe('Bearer hf_secret');
    expect(seen[1]!.auth).toBeUndefined();
  });

  it('a cache hit makes no request', async () => {
    const cache = freshCache();
    await hubDownload('timm/toy.ok', 'model.safetensors', opts(cache));
    seen = [];
    const again = await hubDownload('timm/toy.ok', 'model.safetensors', opts(cache));
    expect(again.fromCache).toBe(true);
    expect(Buffer.from(again.bytes).equals(Buffer.from(weights))).toBe(true);
    expect(seen).toEqual([]);
  });

  it('offline ({ offline: true } or SOFTBIAS_OFFLINE=1): the cache, or a clear error and no request', async () => {
    const cache = freshCache();
    const e = await failure(hubDownload('timm/toy.ok', 'model.safetensors', opts(cache, { offline: true })));
    expect(e.kind).toBe('offline');
    expect(e.message).toContain('timm/toy.ok/model.safetensors is not in the cache');
    expect(e.message).toContain(cache);
    process.env['SOFTBIAS_OFFLINE'] = '1';
    expect((await failure(hubDownload('timm/toy.ok', 'model.safetensors', opts(cache)))).kind).toBe('offline');
    expect(seen).toEqual([]);
    delete process.env['SOFTBIAS_OFFLINE'];
    await hubDownload('timm/toy.ok', 'model.safetensors', opts(cache));
    seen = [];
    process.env['SOFTBIAS_OFFLINE'] = '1';
    expect((await hubDownload('timm/toy.ok', 'model.safetensors', opts(cache))).fromCache).toBe(true);
    expect(seen).toEqual([]);
  });

  it('follows a relative 307 (a renamed repository) on the hub', async () => {
    const got = await hubDownload('timm/renamed', 'model.safetensors', opts(freshCache()));
    expect(Buffer.from(got.bytes).equals(Buffer.from(weights))).toBe(true);
    expect(seen.map((s) => `${s.server} ${s.method} ${s.url}`)).toEqual([
      'hub HEAD /timm/renamed/resolve/main/model.safetensors',
      'hub HEAD /timm/toy.ok/resolve/main/model.safetensors',
      `cdn GET /blobs/${sha}`,
    ]);
  });

  it('a plain git file (config.json: 200 with a git ETag, not a sha256) is fetched and checked by length', async () => {
    const got = await hubDownload('timm/toy.ok', 'config.json', opts(freshCache()));
    expect(JSON.parse(Buffer.from(got.bytes).toString())).toMatchObject({ architecture: 'toy', label_names: ['cat', 'dog'] });
  });

  it('401 for a gated repository says how to get access', async () => {
    const e = await failure(hubDownload('timm/gated', 'model.safetensors', opts(freshCache())));
    expect(e.kind).toBe('gated');
    expect(e.status).toBe(401);
    expect(e.message).toMatch(/gated or private.*HF_TOKEN/);
    expect(e.message).toContain('Access to model timm/gated is restricted');
  });

  it('404 with an HTML body names the repository, not the page', async () => {
    const e = await failure(hubDownload('timm/nope', 'model.safetensors', opts(freshCache())));
    expect(e.kind).toBe('not-found');
    expect(e.message).toContain('no repository timm/nope on the hub');
    expect(e.message).not.toContain('DOCTYPE');
  });

  it('a body cut off half-way is resumed with a Range request (206) and verified', async () => {
    cutOnce = true;
    const cache = freshCache();
    const got = await hubDownload('timm/cut', 'model.safetensors', opts(cache));
    expect(Buffer.from(got.bytes).equals(Buffer.from(weights))).toBe(true);
    const gets = seen.filter((s) => s.server === 'cdn');
    expect(gets.map((s) => s.range)).toEqual([undefined, expect.stringMatching(/^bytes=\d+-$/)]);
    expect(Number(/\d+/.exec(gets[1]!.range!)![0])).toBeGreaterThan(0);
  });

  it('without retries the partial download is kept, and the next call resumes it', async () => {
    cutOnce = true;
    const cache = freshCache();
    const e = await failure(hubDownload('timm/cut', 'model.safetensors', opts(cache, { retries: 0 })));
    expect(e.kind).toBe('network');
    expect(e.message).toContain('the next call resumes them');
    const partial = join(cache, 'hub', 'timm', 'cut', 'main', 'model.safetensors.incomplete');
    const kept = readFileSync(partial).length;
    expect(kept).toBeGreaterThan(0);
    expect(kept).toBeLessThan(weights.length);
    seen = [];
    const got = await hubDownload('timm/cut', 'model.safetensors', opts(cache, { retries: 0 }));
    expect(Buffer.from(got.bytes).equals(Buffer.from(weights))).toBe(true);
    expect(seen.find((s) => s.server === 'cdn')!.range).toBe(`bytes=${kept}-`);
    expect(existsSync(partial)).toBe(false);
  });

  it('416 for a stale partial file: starts again cleanly', async () => {
    const cache = freshCache();
    const dir = join(cache, 'hub', 'timm', 'nosize', 'main');
    mkdirSync(dir, { recursive: true });
    writeFileSync(join(dir, 'model.safetensors.incomplete'), new Uint8Array(weights.length + 10).fill(7));
    const got = await hubDownload('timm/nosize', 'model.safetensors', opts(cache));
    expect(Buffer.from(got.bytes).equals(Buffer.from(weights))).toBe(true);
    expect(seen.filter((s) => s.server === 'cdn').map((s) => s.range)).toEqual([`bytes=${weights.length + 10}-`, undefined]);
  });

  it('a wrong hash is refused and nothing is cached', async () => {
    const cache = freshCache();
    const e = await failure(hubDownload('timm/badhash', 'model.safetensors', opts(cache)));
    expect(e.kind).toBe('verification');
    expect(e.message).toContain(`sha256 ${sha}`);
    const path = join(cache, 'hub', 'timm', 'badhash', 'main', 'model.safetensors');
    expect(existsSync(path)).toBe(false);
    expect(existsSync(`${path}.incomplete`)).toBe(false);
  });

  it('a stalled server hits the timeout with a message that says so', async () => {
    const t0 = Date.now();
    const e = await failure(hubDownload('timm/slow', 'model.safetensors', opts(freshCache(), { timeoutMs: 300, retries: 0 })));
    expect(e.kind).toBe('network');
    expect(e.message).toContain('no data for 300 ms');
    expect(e.message).toContain('timeoutMs');
    expect(Date.now() - t0).toBeLessThan(4000);
  });

  it('an abort through signal stops the download, keeps what arrived, and says so', async () => {
    const cache = freshCache();
    const controller = new AbortController();
    setTimeout(() => controller.abort(), 150);
    const e = await failure(hubDownload('timm/slow', 'model.safetensors', opts(cache, { signal: controller.signal })));
    expect(e.kind).toBe('aborted');
    expect(e.message).toMatch(/aborted after 64 bytes \(kept; the next call resumes\)/);
    expect(readFileSync(join(cache, 'hub', 'timm', 'slow', 'main', 'model.safetensors.incomplete')).length).toBe(64);
  });

  it('a mirror without HEAD (405): the GET alone, checked by its content-length', async () => {
    const got = await hubDownload('timm/nohead', 'model.safetensors', opts(freshCache()));
    expect(Buffer.from(got.bytes).equals(Buffer.from(weights))).toBe(true);
    expect(seen.map((s) => `${s.method} ${s.server}`)).toEqual(['HEAD hub', 'GET hub']);
  });

  it('HF_ENDPOINT (and SOFTBIAS_HUB_URL before it) point at a mirror; the cache folder follows SOFTBIAS_CACHE', async () => {
    const cache = freshCache();
    process.env['HF_ENDPOINT'] = `${hubBase}/`;
    process.env['SOFTBIAS_CACHE'] = cache;
    expect(hubEndpoint()).toBe(hubBase);
    expect(hubUrl('timm/toy.ok', 'model.safetensors')).toBe(`${hubBase}/timm/toy.ok/resolve/main/model.safetensors`);
    const got = await hubDownload('timm/toy.ok', 'model.safetensors', { timeoutMs: 5000 });
    expect(got.fromCache).toBe(false);
    expect(existsSync(join(cache, 'hub', 'timm', 'toy.ok', 'main', 'model.safetensors'))).toBe(true);
    process.env['SOFTBIAS_HUB_URL'] = hubBase;
    process.env['HF_ENDPOINT'] = 'http://127.0.0.1:9';
    expect(hubEndpoint()).toBe(hubBase);
    process.env['SOFTBIAS_CACHE'] = freshCache();
    expect((await hubDownload('timm/toy.ok', 'model.safetensors', { timeoutMs: 5000 })).fromCache).toBe(false);
    delete process.env['SOFTBIAS_CACHE'];
    process.env['XDG_CACHE_HOME'] = cache;
    expect(new FolderCache(join(cache, 'softbias')).describe('a/b/main/f')).toBe(`${join(cache, 'softbias')}/hub/a/b/main/f`);
  });

  it('refuses ids that are not owner/name and keys that would leave the cache folder', async () => {
    expect((await failure(hubDownload('../etc', 'passwd', opts(freshCache())))).kind).toBe('id');
    expect(() => new FolderCache('/tmp/x').describe('timm/a/main/../../b')).toThrow(/invalid key/);
  });
});

describe('BrowserCache (the Cache API)', () => {
  it('stores complete and partial files as responses', async () => {
    const store = new Map<string, Response>();
    const fake = {
      open: async () => ({
        match: async (u: string) => store.get(u)?.clone(),
        put: async (u: string, r: Response) => void store.set(u, r),
        delete: async (u: string) => store.delete(u),
      }),
    };
    const g = globalThis as { caches?: unknown };
    const before = g.caches;
    g.caches = fake;
    try {
      const c = new BrowserCache();
      expect(await c.get('timm/x/main/model.safetensors')).toBeUndefined();
      await c.putPartial('timm/x/main/model.safetensors', new Uint8Array([1, 2]));
      expect([...((await c.getPartial('timm/x/main/model.safetensors')) ?? [])]).toEqual([1, 2]);
      await c.put('timm/x/main/model.safetensors', new Uint8Array([1, 2, 3]));
      expect([...((await c.get('timm/x/main/model.safetensors')) ?? [])]).toEqual([1, 2, 3]);
      expect(await c.getPartial('timm/x/main/model.safetensors')).toBeUndefined();
    } finally {
      g.caches = before;
    }
  });
});

describe('sha256', () => {
  it('the JavaScript and Web Crypto digests equal node:crypto at block boundaries', async () => {
    for (const n of [0, 1, 55, 56, 63, 64, 65, 119, 120, 1000, 65_537]) {
      const b = Uint8Array.from({ length: n }, (_, i) => (i * 31 + 7) & 255);
      const want = createHash('sha256').update(b).digest('hex');
      expect(sha256Js(b), `n=${n}`).toBe(want);
      expect(await sha256Hex(b), `n=${n}`).toBe(want);
    }
  });
});

describe('models.create', () => {
  it('refuses { pretrained } (it would need a download): points at fromPretrained', async () => {
    const { ModelRegistry } = await import('./registry.js');
    const r = new ModelRegistry();
    expect(() => r.create('convit_tiny', { pretrained: true })).toThrow(/use await fromPretrained\('convit_tiny'\)/);
  });
});

describe('fromPretrained options', () => {
  it('refuses a dtype other than float32 and a bad numClasses before any request', async () => {
    const { fromPretrained } = await import('./from-pretrained.js');
    // An endpoint nothing listens on: a request would fail with a network error, not these messages.
    const hub = { endpoint: 'http://127.0.0.1:9', offline: false };
    await expect(fromPretrained('timm/convit_tiny.fb_in1k', { ...hub, dtype: 'float16' as never })).rejects.toThrow(
      /dtype 'float16' is not supported: models compute in float32/,
    );
    await expect(fromPretrained('timm/convit_tiny.fb_in1k', { ...hub, numClasses: 2.5 })).rejects.toThrow(/numClasses must be an integer ≥ 0, got 2.5/);
    await expect(fromPretrained('timm/convit_tiny.fb_in1k', { ...hub, numClasses: -1 })).rejects.toThrow(/numClasses must be an integer ≥ 0/);
  });
});
