/**
 * Where `fit` keeps its checkpoints and its JSON-lines log: a `FitStorage`. The default is Node's file system
 * (what `fit` always did: atomic safetensors files, a log appended synchronously); `memoryStorage()` keeps them
 * in a Map (tests, a page that does not need them to outlive it), `indexedDbStorage()` in a browser's IndexedDB
 * (a Worker included), `opfsStorage()` in its origin-private file system, so a reload can resume from the
 * stored checkpoint.
 */
import { readBytes, writeFileAtomic } from '@softbias/tensor-ops';

/**
 * A key → bytes store. Keys are what `fit` is given as `checkpoint.path`, `resume` and `log` (file paths in
 * Node, any name elsewhere).
 */
export interface FitStorage {
  /** A short name for messages ('node files', 'memory', 'indexeddb:<db>'). */
  readonly name: string;
  /** The whole value; rejects with an error whose `code` is 'ENOENT' when there is none. */
  read(key: string): Promise<Uint8Array>;
  /** Replace the value at once: a reader sees the old bytes or the new, never a mix (a checkpoint). */
  write(key: string, bytes: Uint8Array): Promise<void>;
  /** Append text (a log line). May return before it is stored; `flush()` waits for every append. */
  append(key: string, text: string): void | Promise<void>;
  /** The text appended so far, or undefined when there is none. */
  readText(key: string): Promise<string | undefined>;
  /** Wait for pending appends (and surface their errors). */
  flush?(): Promise<void>;
  /** Remove a key (no error when absent). */
  remove?(key: string): Promise<void>;
}

/** An error like Node's for a missing file (`code: 'ENOENT'`), which `fit({ resume: true })` treats as a fresh start. */
export function notFound(storage: string, key: string): Error {
  return Object.assign(new Error(`${storage}: no entry '${key}'`), { code: 'ENOENT' });
}

const dynamicImport = (name: string): Promise<any> => import(/* @vite-ignore */ /* webpackIgnore: true */ name);

/**
 * The appends of one storage, stored in order one after another (`append` may return first); the first failure
 * is kept and thrown once by `flush()`, which waits for them all; `idle()` waits without throwing (reads and
 * writes go after the appends queued before them).
 */
function appendQueue() {
  let pending: Promise<void> = Promise.resolve();
  let failure: unknown;
  return {
    add(job: () => Promise<void> | void): void {
      pending = pending.then(job).catch((e: unknown) => {
        failure ??= e;
      });
    },
    idle: (): Promise<void> => pending,
    async flush(): Promise<void> {
      await pending;
      if (failure !== undefined) {
        const e = failure;
        failure = undefined;
        throw e;
      }
    },
  };
}

/**
 * Node's file system (the default): checkpoints written atomically (temporary file, fsync, rename), the log
 * appended synchronously, so a killed process loses no record it reported.
 */
export function nodeFileStorage(): FitStorage {
  let fs: { appendFileSync(p: string, d: string): void; readFileSync(p: string, e: 'utf8'): string; rmSync(p: string, o: { force: boolean }): void } | undefined;
  const appends = appendQueue();
  const load = async () => {
    fs ??= await dynamicImport('node:fs');
    return fs!;
  };
  return {
    name: 'node files',
    read: (key) => readBytes(key),
    write: (key, bytes) => writeFileAtomic(key, bytes),
    append(key, text) {
      if (fs) fs.appendFileSync(key, text);
      else {
        // Only before node:fs is loaded (fit's first record): queued, its error kept for flush().
        appends.add(async () => (await load()).appendFileSync(key, text));
      }
    },
    async readText(key) {
      const f = await load();
      try {
        return f.readFileSync(key, 'utf8');
      } catch {
        return undefined;
      }
    },
    async flush() {
      await load();
      await appends.flush();
    },
    async remove(key) {
      (await load()).rmSync(key, { force: true });
    },
  };
}

/** In memory (a Map you may pass in to look at or share): for tests, and pages that need nothing to survive a reload. */
export function memoryStorage(entries: Map<string, Uint8Array | string> = new Map()): FitStorage & { readonly entries: Map<string, Uint8Array | string> } {
  const enc = new TextEncoder();
  return {
    name: 'memory',
    entries,
    async read(key) {
      const v = entries.get(key);
      if (v === undefined) throw notFound('memory', key);
      return typeof v === 'string' ? enc.encode(v) : v.slice();
    },
    async write(key, bytes) {
      entries.set(key, bytes.slice());
    },
    append(key, text) {
      const v = entries.get(key);
      entries.set(key, (typeof v === 'string' ? v : v ? new TextDecoder().decode(v) : '') + text);
    },
    async readText(key) {
      const v = entries.get(key);
      return v === undefined ? undefined : typeof v === 'string' ? v : new TextDecoder().decode(v);
    },
    async remove(key) {
      entries.delete(key);
    },
  };
}

/**
 * A browser's IndexedDB (pages and Workers): one object store of key → bytes (checkpoints) or text (logs).
 * A write is one transaction (old or new bytes, never a mix); appends are queued in order and stored one
 * transaction each; `flush()` waits for them.
 */
export function indexedDbStorage(dbName = 'softbias-train', opts: { indexedDB?: IDBFactory } = {}): FitStorage {
  const store = 'files';
  const factory = opts.indexedDB ?? (globalThis as { indexedDB?: IDBFactory }).indexedDB;
  let db: Promise<IDBDatabase> | undefined;
  const open = (): Promise<IDBDatabase> => {
    if (!factory) return Promise.reject(new Error('indexedDbStorage: IndexedDB is not available here'));
    if (!db) {
      db = new Promise((resolve, reject) => {
        const req = factory.open(dbName, 1);
        req.onupgradeneeded = () => req.result.createObjectStore(store);
        req.onsuccess = () => resolve(req.result);
        req.onerror = () => reject(req.error);
      });
    }
    return db;
  };
  const request = async <T>(mode: IDBTransactionMode, f: (s: IDBObjectStore) => IDBRequest<T>): Promise<T> => {
    const d = await open();
    return new Promise<T>((resolve, reject) => {
      const tx = d.transaction(store, mode);
      const req = f(tx.objectStore(store));
      let result: T;
      req.onsuccess = () => {
        result = req.result;
      };
      tx.oncomplete = () => resolve(result);
      tx.onerror = () => reject(tx.error ?? req.error);
      tx.onabort = () => reject(tx.error ?? new Error('indexedDbStorage: transaction aborted'));
    });
  };
  const get = (key: string) => request<unknown>('readonly', (s) => s.get(key));
  const appends = appendQueue();
  const name = `indexeddb:${dbName}`;
  return {
    name,
    async read(key) {
      await appends.idle();
      const v = await get(key);
      if (v === undefined) throw notFound(name, key);
      if (typeof v === 'string') return new TextEncoder().encode(v);
      return v instanceof Uint8Array ? v : new Uint8Array(v as ArrayBuffer);
    },
    async write(key, bytes) {
      await appends.idle();
      await request('readwrite', (s) => s.put(bytes.slice(), key));
    },
    append(key, text) {
      appends.add(async () => {
        const d = await open();
        await new Promise<void>((resolve, reject) => {
          // Read and extend in one transaction: two appends never interleave.
          const tx = d.transaction(store, 'readwrite');
          const s = tx.objectStore(store);
          const req = s.get(key);
          req.onsuccess = () => s.put((typeof req.result === 'string' ? req.result : '') + text, key);
          tx.oncomplete = () => resolve();
          tx.onerror = () => reject(tx.error);
          tx.onabort = () => reject(tx.error ?? new Error('indexedDbStorage: transaction aborted'));
        });
      });
    },
    async readText(key) {
      await appends.idle();
      const v = await get(key);
      return typeof v === 'string' ? v : undefined;
    },
    flush: () => appends.flush(),
    async remove(key) {
      await appends.idle();
      await request('readwrite', (s) => s.delete(key));
    },
  };
}

/** The parts of a `FileSystemDirectoryHandle` (OPFS) that `opfsStorage` uses; a fake one will do in a test. */
export interface OpfsDirectory {
  getDirectoryHandle(name: string, opts?: { create?: boolean }): Promise<OpfsDirectory>;
  getFileHandle(name: string, opts?: { create?: boolean }): Promise<OpfsFile>;
  removeEntry(name: string): Promise<void>;
}
/** The parts of a `FileSystemFileHandle` that `opfsStorage` uses (`move` is not in every browser). */
export interface OpfsFile {
  getFile(): Promise<Blob>;
  createWritable(opts?: { keepExistingData?: boolean }): Promise<{
    write(data: Uint8Array | string | { type: 'write'; position: number; data: Uint8Array | string }): Promise<void>;
    close(): Promise<void>;
    abort(reason?: unknown): Promise<void>;
  }>;
  move?(dir: OpfsDirectory, name: string): Promise<void>;
}

/** True when this context has the origin-private file system (`navigator.storage.getDirectory`). */
export function opfsAvailable(): boolean {
  const nav = (globalThis as { navigator?: { storage?: { getDirectory?: unknown } } }).navigator;
  return typeof nav?.storage?.getDirectory === 'function';
}

const isNotFound = (e: unknown) => (e as { name?: string } | null)?.name === 'NotFoundError';

/**
 * The browser's origin-private file system (OPFS; pages and Workers): one file per key in the directory
 * `dirName` (a key is stored under its `encodeURIComponent` name, so '/' in a key makes no subdirectory).
 * A write goes to a temporary file that is then moved over the key's file (`FileSystemFileHandle.move`);
 * where `move` is missing, `createWritable` on the key's file itself (its bytes are committed at `close()`,
 * so a reader still sees the old bytes or the new). Appends are queued in order; `flush()` waits for them.
 * `opts.root` replaces `navigator.storage.getDirectory()` (a test's fake directory).
 */
export function opfsStorage(dirName = 'softbias-train', opts: { root?: OpfsDirectory | Promise<OpfsDirectory> } = {}): FitStorage {
  let dir: Promise<OpfsDirectory> | undefined;
  const open = (): Promise<OpfsDirectory> => {
    if (!dir) {
      const nav = (globalThis as { navigator?: { storage?: { getDirectory?: () => Promise<OpfsDirectory> } } }).navigator;
      const root = opts.root ?? nav?.storage?.getDirectory?.();
      dir = root
        ? Promise.resolve(root).then((r) => r.getDirectoryHandle(dirName, { create: true }))
        : Promise.reject(new Error('opfsStorage: the origin-private file system (navigator.storage.getDirectory) is not available here'));
    }
    return dir;
  };
  const fileName = (key: string) => encodeURIComponent(key);
  let tmpCount = 0;
  const appends = appendQueue();
  const name = `opfs:${dirName}`;
  const getFile = async (key: string): Promise<Blob | undefined> => {
    const d = await open();
    try {
      return await (await d.getFileHandle(fileName(key))).getFile();
    } catch (e) {
      if (isNotFound(e)) return undefined;
      throw e;
    }
  };
  const writeWhole = async (h: OpfsFile, data: Uint8Array | string) => {
    const w = await h.createWritable({ keepExistingData: false });
    try {
      await w.write(data);
    } catch (e) {
      await w.abort(e).catch(() => {});
      throw e;
    }
    await w.close();
  };
  return {
    name,
    async read(key) {
      await appends.idle();
      const f = await getFile(key);
      if (!f) throw notFound(name, key);
      return new Uint8Array(await f.arrayBuffer());
    },
    async write(key, bytes) {
      await appends.idle();
      const d = await open();
      const target = fileName(key);
      const tmp = `${target}.tmp-${Date.now().toString(36)}-${tmpCount++}`;
      const h = await d.getFileHandle(tmp, { create: true });
      if (typeof h.move !== 'function') {
        await d.removeEntry(tmp).catch(() => {});
        await writeWhole(await d.getFileHandle(target, { create: true }), bytes.slice());
        return;
      }
      try {
        await writeWhole(h, bytes.slice());
        await h.move!(d, target);
      } catch (e) {
        await d.removeEntry(tmp).catch(() => {});
        throw e;
      }
    },
    append(key, text) {
      appends.add(async () => {
        const d = await open();
        const h = await d.getFileHandle(fileName(key), { create: true });
        const size = (await h.getFile()).size;
        const w = await h.createWritable({ keepExistingData: true });
        try {
          await w.write({ type: 'write', position: size, data: text });
        } catch (e) {
          await w.abort(e).catch(() => {});
          throw e;
        }
        await w.close();
      });
    },
    async readText(key) {
      await appends.idle();
      const f = await getFile(key);
      return f ? await f.text() : undefined;
    },
    flush: () => appends.flush(),
    async remove(key) {
      await appends.idle();
      const d = await open();
      try {
        await d.removeEntry(fileName(key));
      } catch (e) {
        if (!isNotFound(e)) throw e;
      }
    },
  };
}
