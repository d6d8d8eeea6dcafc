/**
 * The Hugging Face hub client: files of a model repository by their resolve URLs
 * (`<endpoint>/<repo>/resolve/<revision>/<file>`), cached (see `cache.ts`), verified and resumable.
 *
 * What the hub does, and what this client relies on (huggingface_hub's `hf_hub_download` protocol):
 * - `HEAD …/resolve/…` answers a file stored with Git LFS (weights) with a 302 to another host (the CDN),
 *   carrying `X-Linked-Etag` (the file's sha256) and `X-Linked-Size`; a plain git file (config.json) with a
 *   200 and its `ETag`. A renamed repository answers with a relative 307. A gated or private repository
 *   answers 401 (or 403), a missing one 404, with `X-Error-Code` (`RepoNotFound`, `EntryNotFound`,
 *   `GatedRepo`) and an HTML or JSON body.
 * - The CDN honours `Range: bytes=N-` (206; 416 when N is past the end).
 *
 * Downloads are verified (the length against `X-Linked-Size`/`Content-Length`, the sha256 against
 * `X-Linked-Etag` when the hub sends one), written atomically, and an interrupted download is resumed with a
 * Range request (in the same call up to `retries` times, and in the next call from the partial file kept in
 * the cache). Nothing is fetched when the file is cached. `{ offline: true }` / `SOFTBIAS_OFFLINE=1` never
 * touches the network. `SOFTBIAS_HUB_URL` (or `HF_ENDPOINT`) points at a mirror.
 */
import { FetchError, fetchBytes, fetchHead } from '../net.js';
import { type HubCache, FolderCache, NoCache, defaultCache, environment } from './cache.js';
import { sha256Hex } from './sha256.js';

export const DEFAULT_HUB_ENDPOINT = 'https://huggingface.co';

export type HubErrorKind = 'offline' | 'not-found' | 'gated' | 'verification' | 'network' | 'http' | 'content' | 'aborted' | 'id';

/** A hub download that failed: names the repository, the file and the URL, and says what to do. */
export class HubError extends Error {
  constructor(
    message: string,
    readonly kind: HubErrorKind,
    readonly info: { repo?: string; file?: string; url?: string; status?: number; cause?: unknown } = {},
  ) {
    super(message, info.cause !== undefined ? { cause: info.cause } : undefined);
    this.name = 'HubError';
  }
  get status(): number | undefined {
    return this.info.status;
  }
}

export interface HubProgress {
  /** Bytes of the file so far (a resumed download starts at the bytes it already had). */
  loaded: number;
  /** The file's size, when the hub or the server said it. */
  total: number | undefined;
  /** The file being fetched (`model.safetensors`, `config.json`). */
  file: string;
}

export interface HubOptions {
  /** The hub (or a mirror): default `$SOFTBIAS_HUB_URL`, else `$HF_ENDPOINT`, else https://huggingface.co. */
  endpoint?: string;
  /** Branch, tag or commit. Default 'main'. */
  revision?: string;
  /** Use only the cache; fail with a clear message when a file is not there. Default `$SOFTBIAS_OFFLINE` = 1/true. */
  offline?: boolean;
  /** Where files are kept: a `HubCache`, a folder (Node), or false for none. Default: see `defaultCache`. */
  cache?: HubCache | string | false;
  /** A Hugging Face access token for gated / private repositories. Default `$HF_TOKEN`. */
  token?: string;
  onProgress?: (p: HubProgress) => void;
  signal?: AbortSignal;
  /** Fail when nothing arrives for this long (ms). Default 30 000. */
  timeoutMs?: number;
  /** Resumptions of an interrupted download within one call. Default 2. */
  retries?: number;
  /** The fetch to use (default globalThis.fetch). */
  fetch?: typeof fetch;
}

export interface HubFile {
  bytes: Uint8Array;
  /** Whether it came from the cache (no request was made). */
  fromCache: boolean;
  /** Where it is cached (a path or a Cache API URL). */
  location: string;
}

const truthy = (v: string | undefined) => v !== undefined && /^(1|true|yes|on)$/i.test(v.trim());

/** The endpoint in effect: the option, `$SOFTBIAS_HUB_URL`, `$HF_ENDPOINT`, or the hub, without a trailing slash. */
export function hubEndpoint(opts: Pick<HubOptions, 'endpoint'> = {}): string {
  const env = environment();
  const e = opts.endpoint ?? env['SOFTBIAS_HUB_URL'] ?? env['HF_ENDPOINT'] ?? DEFAULT_HUB_ENDPOINT;
  return e.replace(/\/+$/, '');
}

/** Whether offline mode is on: the option, else `$SOFTBIAS_OFFLINE` (or huggingface_hub's `$HF_HUB_OFFLINE`). */
export function isOffline(opts: Pick<HubOptions, 'offline'> = {}): boolean {
  if (opts.offline !== undefined) return opts.offline;
  const env = environment();
  return truthy(env['SOFTBIAS_OFFLINE']) || truthy(env['HF_HUB_OFFLINE']);
}

const REPO = /^[A-Za-z0-9][\w.-]*\/[A-Za-z0-9][\w.-]*$/;

/** `<endpoint>/<repo>/resolve/<revision>/<file>`. */
export function hubUrl(repo: string, file: string, opts: Pick<HubOptions, 'endpoint' | 'revision'> = {}): string {
  checkRepo(repo);
  const rev = encodeURIComponent(opts.revision ?? 'main');
  return `${hubEndpoint(opts)}/${repo}/resolve/${rev}/${file.split('/').map(encodeURIComponent).join('/')}`;
}

function checkRepo(repo: string): void {
  if (!REPO.test(repo) || repo.includes('..')) {
    throw new HubError(`'${repo}' is not a hub repository id (owner/name, e.g. timm/convit_tiny.fb_in1k)`, 'id', { repo });
  }
}

async function resolveCache(c: HubOptions['cache']): Promise<HubCache> {
  if (c === false) return new NoCache();
  if (typeof c === 'string') return new FolderCache(c);
  return c ?? defaultCache();
}

interface Meta {
  /** Where to GET the bytes (the CDN location of a cross-host redirect, or the resolve URL). */
  url: string;
  size: number | undefined;
  sha256: string | undefined;
}

const sizeOf = (v: string | null) => (v !== null && /^\d+$/.test(v.trim()) ? Number(v.trim()) : undefined);
function sha256Of(v: string | null): string | undefined {
  const s = v?.trim().replace(/^W\//, '').replace(/^"|"$/g, '').toLowerCase();
  return s && /^[0-9a-f]{64}$/.test(s) ? s : undefined;
}

function refusal(status: number, res: Response | undefined, repo: string, file: string, url: string, token: boolean): HubError {
  const code = res?.headers.get('x-error-code') ?? '';
  const said = res?.headers.get('x-error-message');
  const extra = said ? ` (the hub says: ${said})` : '';
  if (status === 401 || status === 403 || code === 'GatedRepo') {
    return new HubError(
      `${repo} is gated or private (HTTP ${status})${extra}: ${
        token ? 'the token (HF_TOKEN / { token }) has no access to it' : 'accept its terms on the hub and set HF_TOKEN (or pass { token })'
      } — ${url}`,
      'gated',
      { repo, file, url, status },
    );
  }
  if (status === 404) {
    const what = code === 'EntryNotFound' ? `${repo} has no file '${file}'` : code === 'RepoNotFound' ? `no repository ${repo} on the hub` : `${repo}/${file} was not found`;
    return new HubError(`${what} (HTTP 404)${extra}: check the id (e.g. timm/convnextv2_atto.fcmae_ft_in1k) — ${url}`, 'not-found', { repo, file, url, status });
  }
  return new HubError(`HTTP ${status} for ${repo}/${file}${extra} — ${url}`, 'http', { repo, file, url, status });
}

/** HEAD the resolve URL without following a cross-host redirect, to read the hub's linked ETag and size. */
async function metadata(url: string, repo: string, file: string, opts: HubOptions, headers: Record<string, string>): Promise<Meta> {
  let at = url;
  let size: number | undefined;
  let sha: string | undefined;
  for (let hop = 0; hop < 10; hop++) {
    const res = await fetchHead(at, {
      // The file's own size, not a compressed representation's (as huggingface_hub asks; browsers ignore it).
      headers: { ...headers, 'accept-encoding': 'identity' },
      redirect: 'manual',
      ...(opts.signal ? { signal: opts.signal } : {}),
      ...(opts.timeoutMs !== undefined ? { timeoutMs: opts.timeoutMs } : {}),
      ...(opts.fetch ? { fetch: opts.fetch } : {}),
    });
    // A browser hides redirects (an opaque response): GET the resolve URL and follow them there.
    if (res.type === 'opaqueredirect' || (res.status === 0 && res.type !== 'error')) return { url: at, size, sha256: sha };
    size = sizeOf(res.headers.get('x-linked-size')) ?? size;
    sha = sha256Of(res.headers.get('x-linked-etag')) ?? sha;
    if (res.status >= 300 && res.status < 400) {
      const loc = res.headers.get('location');
      if (!loc) throw new HubError(`HTTP ${res.status} without a Location for ${repo}/${file} — ${at}`, 'http', { repo, file, url: at, status: res.status });
      const next = new URL(loc, at);
      // A relative / same-host redirect (renamed repository) is followed here; the CDN is where the bytes are.
      if (next.origin === new URL(at).origin) {
        at = next.href;
        continue;
      }
      return { url: next.href, size, sha256: sha };
    }
    // A mirror or static server without HEAD: GET the file and check what it says there.
    if (res.status === 405 || res.status === 501) return { url: at, size, sha256: sha };
    if (!res.ok) throw refusal(res.status, res, repo, file, at, headers['authorization'] !== undefined);
    return {
      url: at,
      size: size ?? (res.headers.get('content-encoding') ? undefined : sizeOf(res.headers.get('content-length'))),
      sha256: sha ?? sha256Of(res.headers.get('etag')),
    };
  }
  throw new HubError(`too many redirects for ${repo}/${file} — ${url}`, 'http', { repo, file, url });
}

function join(a: Uint8Array, b: Uint8Array): Uint8Array {
  if (a.length === 0) return b;
  const out = new Uint8Array(a.length + b.length);
  out.set(a);
  out.set(b, a.length);
  return out;
}

function concatAll(chunks: Uint8Array[]): Uint8Array {
  const n = chunks.reduce((s, c) => s + c.length, 0);
  const out = new Uint8Array(n);
  let o = 0;
  for (const c of chunks) {
    out.set(c, o);
    o += c.length;
  }
  return out;
}

/**
 * A file of a hub repository: from the cache when it is there (no request), else downloaded (verified,
 * resumed after an interruption, stored atomically). Throws a {@link HubError} saying what failed and what
 * to do (offline and not cached, gated, not found, verification, network).
 */
export async function hubDownload(repo: string, file: string, opts: HubOptions = {}): Promise<HubFile> {
  checkRepo(repo);
  const revision = opts.revision ?? 'main';
  const key = `${repo}/${revision}/${file}`;
  const cache = await resolveCache(opts.cache);
  const cached = await cache.get(key);
  if (cached) {
    opts.onProgress?.({ loaded: cached.length, total: cached.length, file });
    return { bytes: cached, fromCache: true, location: cache.describe(key) };
  }
  const url = hubUrl(repo, file, { ...opts, revision });
  if (isOffline(opts)) {
    throw new HubError(
      `offline ({ offline: true } / SOFTBIAS_OFFLINE=1): ${repo}/${file} is not in the cache (${cache.describe(key)}); ` +
        `download it once online, or copy the file there`,
      'offline',
      { repo, file, url },
    );
  }
  const token = opts.token ?? environment()['HF_TOKEN'];
  const auth: Record<string, string> = token ? { authorization: `Bearer ${token}` } : {};
  const common = {
    ...(opts.signal ? { signal: opts.signal } : {}),
    ...(opts.timeoutMs !== undefined ? { timeoutMs: opts.timeoutMs } : {}),
    ...(opts.fetch ? { fetch: opts.fetch } : {}),
  };
  let meta: Meta;
  try {
    meta = await metadata(url, repo, file, opts, auth);
  } catch (e) {
    if (e instanceof FetchError) {
      throw new HubError(`cannot reach the hub for ${repo}/${file}: ${e.message}${hint(e)}`, e.kind === 'aborted' ? 'aborted' : 'network', {
        repo,
        file,
        url,
        cause: e,
      });
    }
    throw e;
  }
  // Only send the token to the hub itself, not to the CDN a redirect points at.
  const sameHost = new URL(meta.url).origin === new URL(url).origin;
  let prefix = (await cache.getPartial(key).catch(() => undefined)) ?? new Uint8Array(0);
  if (meta.size !== undefined && prefix.length > meta.size) prefix = new Uint8Array(0);
  const retries = opts.retries ?? 2;
  let bytes: Uint8Array | undefined = meta.size !== undefined && prefix.length === meta.size ? prefix : undefined;
  for (let attempt = 0; bytes === undefined; attempt++) {
    const start = prefix.length;
    const got: Uint8Array[] = [];
    let restarted = false;
    try {
      const body = await fetchBytes(meta.url, {
        ...common,
        headers: { ...(sameHost ? auth : {}), ...(start > 0 ? { range: `bytes=${start}-` } : {}) },
        ...(start === 0 && file.endsWith('.safetensors') ? { expect: 'safetensors' as const } : {}),
        onResponse: (res) => {
          if (start === 0) return;
          if (res.status === 206) {
            const m = /^bytes (\d+)-/.exec(res.headers.get('content-range') ?? '');
            if (!m || Number(m[1]) !== start) {
              throw new HubError(`the server resumed ${repo}/${file} at the wrong offset (${res.headers.get('content-range')}; asked ${start})`, 'network', { repo, file, url: meta.url });
            }
          } else {
            restarted = true; // a 200 to a Range request: the whole file again
          }
        },
        onChunk: (c, received, declared) => {
          got.push(c);
          const base = restarted ? 0 : start;
          const total = meta.size ?? (declared !== undefined ? base + declared : undefined);
          opts.onProgress?.({ loaded: base + received, total, file });
        },
      });
      bytes = restarted ? body : join(prefix, body);
    } catch (e) {
      if (e instanceof HubError) {
        await cache.deletePartial(key).catch(() => {});
        throw e;
      }
      if (!(e instanceof FetchError)) throw e;
      if (e.status === 416) {
        // The range is past the end: the file changed, or the partial file is stale. Start again.
        prefix = new Uint8Array(0);
        await cache.deletePartial(key).catch(() => {});
        if (attempt < retries) continue;
      }
      if (e.kind === 'http' && e.status !== undefined && e.status !== 416) {
        throw refusal(e.status, undefined, repo, file, meta.url, token !== undefined);
      }
      if (e.kind === 'content') {
        await cache.deletePartial(key).catch(() => {});
        throw new HubError(`${repo}/${file}: ${e.message}`, 'content', { repo, file, url: meta.url, cause: e });
      }
      // Interrupted (dropped, truncated, stalled, aborted): keep what arrived, resume from there.
      if (e.kind !== 'too-large' && got.length > 0) {
        prefix = restarted ? concatAll(got) : join(prefix, concatAll(got));
        await cache.putPartial(key, prefix).catch(() => {});
      }
      if (e.kind === 'aborted') {
        throw new HubError(`download of ${repo}/${file} aborted after ${prefix.length} bytes (kept; the next call resumes)`, 'aborted', {
          repo,
          file,
          url: meta.url,
          cause: e,
        });
      }
      if (attempt < retries && e.kind !== 'too-large') continue;
      throw new HubError(
        `download of ${repo}/${file} failed: ${e.message}${hint(e)}` +
          (prefix.length ? `; ${prefix.length} bytes are kept (${cache.describe(key)}.incomplete) and the next call resumes them` : ''),
        'network',
        { repo, file, url: meta.url, cause: e },
      );
    }
  }
  const fail = async (why: string) => {
    await cache.deletePartial(key).catch(() => {});
    return new HubError(`${repo}/${file} failed verification: ${why}; the download was discarded — ${url}`, 'verification', { repo, file, url });
  };
  if (meta.size !== undefined && bytes.length !== meta.size) {
    throw await fail(`got ${bytes.length} bytes, the hub says ${meta.size} (X-Linked-Size / Content-Length)`);
  }
  if (meta.sha256 !== undefined) {
    const got = await sha256Hex(bytes);
    if (got !== meta.sha256) throw await fail(`sha256 ${got}, the hub says ${meta.sha256} (X-Linked-Etag)`);
  }
  await cache.put(key, bytes).catch(() => {}); // a read-only cache still returns the bytes
  return { bytes, fromCache: false, location: cache.describe(key) };
}

function hint(e: FetchError): string {
  if (e.kind === 'timeout') return ' (a slow or unreachable hub: raise { timeoutMs }, or point SOFTBIAS_HUB_URL / HF_ENDPOINT at a mirror)';
  if (e.kind === 'network') return ' (no network? set SOFTBIAS_OFFLINE=1 to use the cache only, or SOFTBIAS_HUB_URL / HF_ENDPOINT for a mirror)';
  return '';
}
