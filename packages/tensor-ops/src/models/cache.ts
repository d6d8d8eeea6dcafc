/**
 * Where downloaded pretrained files are kept: a folder in Node (`$SOFTBIAS_CACHE`, else
 * `$XDG_CACHE_HOME/softbias`, else `~/.cache/softbias`), the Cache API in browsers. Complete files are stored
 * atomically (Node: temporary file, then rename); an interrupted download keeps its bytes as a partial file
 * (`<file>.incomplete`) so that the next attempt resumes it with a Range request.
 *
 * This module is browser-safe: Node's `fs`, `path` and `os` are imported dynamically, only in Node.
 */
import { writeFileAtomic } from '../safetensors.js';

/** A store of complete (verified) files and of partial downloads, by key (`<repo>/<revision>/<file>`). */
export interface HubCache {
  /** Where it lives, for messages (a folder, or "the browser's Cache API"). */
  readonly location: string;
  /** A complete file, or undefined. */
  get(key: string): Promise<Uint8Array | undefined>;
  /** Store a complete file atomically (and drop its partial download). */
  put(key: string, bytes: Uint8Array): Promise<void>;
  /** The bytes of an interrupted download, or undefined. */
  getPartial(key: string): Promise<Uint8Array | undefined>;
  putPartial(key: string, bytes: Uint8Array): Promise<void>;
  deletePartial(key: string): Promise<void>;
  /** Remove a complete file (and its partial download). */
  delete(key: string): Promise<void>;
  /** Where a key is (or would be) stored, for messages. */
  describe(key: string): string;
}

type Env = Record<string, string | undefined>;

/** The environment in Node, `{}` elsewhere. */
export function environment(): Env {
  const p = (globalThis as { process?: { env?: Env } }).process;
  return p?.env ?? {};
}

export function isNode(): boolean {
  const p = (globalThis as { process?: { versions?: { node?: string } } }).process;
  return typeof p?.versions?.node === 'string';
}

/** Keys are `<owner>/<name>/<revision>/<file>`: each part checked so that a key cannot leave the cache folder. */
function checkKey(key: string): string[] {
  const parts = key.split('/');
  if (parts.length < 2 || parts.some((p) => p === '' || p === '.' || p === '..' || p.includes('\\') || p.includes('\0'))) {
    throw new Error(`hub cache: invalid key '${key}'`);
  }
  return parts;
}

/** The cache folder Node uses: `$SOFTBIAS_CACHE`, else `$XDG_CACHE_HOME/softbias`, else `~/.cache/softbias`. */
export async function defaultCacheDir(env: Env = environment()): Promise<string> {
  if (env['SOFTBIAS_CACHE']) return env['SOFTBIAS_CACHE'];
  const { join } = await import(/* @vite-ignore */ 'node:path');
  if (env['XDG_CACHE_HOME']) return join(env['XDG_CACHE_HOME'], 'softbias');
  const { homedir } = await import(/* @vite-ignore */ 'node:os');
  return join(homedir(), '.cache', 'softbias');
}

/** A folder cache (Node): `<dir>/hub/<owner>/<name>/<revision>/<file>`. */
export class FolderCache implements HubCache {
  constructor(readonly location: string) {}

  private async path(key: string, suffix = ''): Promise<string> {
    const { join } = await import(/* @vite-ignore */ 'node:path');
    return join(this.location, 'hub', ...checkKey(key)) + suffix;
  }

  describe(key: string): string {
    return `${this.location}/hub/${checkKey(key).join('/')}`;
  }

  private async read(path: string): Promise<Uint8Array | undefined> {
    const fs = await import(/* @vite-ignore */ 'node:fs/promises');
    try {
      const buf = await fs.readFile(path);
      return new Uint8Array(buf.buffer, buf.byteOffset, buf.byteLength);
    } catch (e) {
      if ((e as { code?: string }).code === 'ENOENT') return undefined;
      throw e;
    }
  }

  private async write(path: string, bytes: Uint8Array): Promise<void> {
    const fs = await import(/* @vite-ignore */ 'node:fs/promises');
    const { dirname } = await import(/* @vite-ignore */ 'node:path');
    await fs.mkdir(dirname(path), { recursive: true });
    await writeFileAtomic(path, bytes);
  }

  private async remove(path: string): Promise<void> {
    const fs = await import(/* @vite-ignore */ 'node:fs/promises');
    await fs.rm(path, { force: true });
  }

  async get(key: string): Promise<Uint8Array | undefined> {
    return this.read(await this.path(key));
  }

  async put(key: string, bytes: Uint8Array): Promise<void> {
    await this.write(await this.path(key), bytes);
    await this.deletePartial(key);
  }

  async getPartial(key: string): Promise<Uint8Array | undefined> {
    return this.read(await this.path(key, '.incomplete'));
  }

  async putPartial(key: string, bytes: Uint8Array): Promise<void> {
    await this.write(await this.path(key, '.incomplete'), bytes);
  }

  async deletePartial(key: string): Promise<void> {
    await this.remove(await this.path(key, '.incomplete'));
  }

  async delete(key: string): Promise<void> {
    await this.remove(await this.path(key));
    await this.deletePartial(key);
  }
}

/** The browser's Cache API (`caches.open('softbias-hub')`); a put replaces the entry as a whole. */
export class BrowserCache implements HubCache {
  readonly location = "the browser's Cache API (cache 'softbias-hub')";
  private readonly base = 'https://softbias.invalid/hub/';

  private url(key: string, partial = false): string {
    return `${this.base}${checkKey(key).map(encodeURIComponent).join('/')}${partial ? '.incomplete' : ''}`;
  }

  describe(key: string): string {
    return `${this.url(key)} in ${this.location}`;
  }

  private async open(): Promise<Cache> {
    return (globalThis as unknown as { caches: CacheStorage }).caches.open('softbias-hub');
  }

  private async read(url: string): Promise<Uint8Array | undefined> {
    const res = await (await this.open()).match(url);
    return res ? new Uint8Array(await res.arrayBuffer()) : undefined;
  }

  private async write(url: string, bytes: Uint8Array): Promise<void> {
    const body = bytes as Uint8Array<ArrayBuffer>;
    await (await this.open()).put(url, new Response(body, { headers: { 'content-length': String(bytes.length) } }));
  }

  get(key: string) {
    return this.read(this.url(key));
  }
  async put(key: string, bytes: Uint8Array) {
    await this.write(this.url(key), bytes);
    await this.deletePartial(key);
  }
  getPartial(key: string) {
    return this.read(this.url(key, true));
  }
  putPartial(key: string, bytes: Uint8Array) {
    return this.write(this.url(key, true), bytes);
  }
  async deletePartial(key: string) {
    await (await this.open()).delete(this.url(key, true));
  }
  async delete(key: string) {
    await (await this.open()).delete(this.url(key));
    await this.deletePartial(key);
  }
}

/** No cache: every call downloads (runtimes with neither a file system nor the Cache API). */
export class NoCache implements HubCache {
  readonly location = 'no cache';
  describe(key: string) {
    return `${key} (not cached)`;
  }
  async get() {
    return undefined;
  }
  async put() {}
  async getPartial() {
    return undefined;
  }
  async putPartial() {}
  async deletePartial() {}
  async delete() {}
}

/** The cache of this runtime: a folder in Node (see {@link defaultCacheDir}), the Cache API in browsers, else none. */
export async function defaultCache(env: Env = environment()): Promise<HubCache> {
  if (isNode()) return new FolderCache(await defaultCacheDir(env));
  if (typeof (globalThis as { caches?: unknown }).caches === 'object') return new BrowserCache();
  return new NoCache();
}
