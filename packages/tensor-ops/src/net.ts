/**
 * Fetching bytes from a URL with a timeout, an AbortSignal, and checks of what came back: the status, the
 * declared length against what arrived, and the first bytes against what the caller expects (an HTML page
 * served with status 200 is reported as HTML, not as a nonsense parse error). Every failure is a FetchError
 * naming the URL; network errors keep the original as `cause`.
 */

export type FetchErrorKind = 'http' | 'timeout' | 'aborted' | 'network' | 'truncated' | 'too-large' | 'content';

export class FetchError extends Error {
  readonly url: string;
  readonly kind: FetchErrorKind;
  /** The HTTP status when the server answered. */
  readonly status: number | undefined;
  constructor(url: string, kind: FetchErrorKind, message: string, opts: { cause?: unknown; status?: number } = {}) {
    super(`${message} (${url})`, opts.cause !== undefined ? { cause: opts.cause } : undefined);
    this.name = 'FetchError';
    this.url = url;
    this.kind = kind;
    this.status = opts.status;
  }
}

/** Checks the first bytes: return a reason when they are not what was expected. */
export type ContentCheck = (head: Uint8Array, contentType: string | null) => string | undefined;

export interface FetchBytesOptions {
  /** Abort the request (and the body download). */
  signal?: AbortSignal;
  /**
   * Fail when nothing arrives for this long, waiting for the response or between body chunks (ms; default
   * 30 000; 0 or Infinity: no timeout). A slow but steady download of a large file is not cut off.
   */
  timeoutMs?: number;
  /** What the bytes must be: 'safetensors', or a check of the first bytes. */
  expect?: 'safetensors' | ContentCheck;
  /** Refuse bodies longer than this (declared or received). Default: no limit. */
  maxBytes?: number;
  /** The fetch to use (default globalThis.fetch). */
  fetch?: typeof fetch;
  /** Request headers (e.g. `Range`, `Authorization`). */
  headers?: Record<string, string>;
  /** Called with the (ok) response before its body is read: may throw to refuse it (e.g. a 200 to a Range request). */
  onResponse?: (res: Response) => void;
  /** Called after each body chunk arrives (the chunk itself, bytes so far, the declared length when known). */
  onChunk?: (chunk: Uint8Array, received: number, declared: number | undefined) => void;
}

const decoder = new TextDecoder('utf-8', { fatal: false });

function looksLikeHtml(head: Uint8Array): boolean {
  const text = decoder.decode(head.subarray(0, 256)).replace(/^\uFEFF/, '').trimStart().toLowerCase();
  return text.startsWith('<!doctype') || text.startsWith('<html') || text.startsWith('<head') || text.startsWith('<body') || text.startsWith('<?xml') || text.startsWith('<!--');
}

/** safetensors: u64 little-endian header length, then a JSON object. */
export const expectSafetensors: ContentCheck = (head, contentType) => {
  if (looksLikeHtml(head) || /^text\/html\b/i.test(contentType ?? '')) {
    return `not a safetensors file (got HTML${contentType ? `, content-type ${contentType}` : ''}: a web page, an error or a login page served instead of the file?)`;
  }
  if (head.length < 9) return `not a safetensors file (only ${head.length} bytes)`;
  const view = new DataView(head.buffer, head.byteOffset, head.byteLength);
  const n = view.getUint32(0, true) + view.getUint32(4, true) * 2 ** 32;
  if (head[8] !== 0x7b || n < 2) {
    const shown = decoder.decode(head.subarray(0, 32)).replace(/[^\x20-\x7e]/g, '.');
    return `not a safetensors file (the first bytes are not a header length and a JSON object: '${shown}')`;
  }
  return undefined;
};

/**
 * GET `url` into memory. Throws a {@link FetchError} naming the URL for: an HTTP error status, no progress
 * within `timeoutMs`, an abort through `signal`, a network error (refused, reset, dropped), a body shorter or
 * longer than its content-length, a body beyond `maxBytes`, or first bytes that fail `expect`.
 */
export async function fetchBytes(url: string | URL, opts: FetchBytesOptions = {}): Promise<Uint8Array> {
  const href = url instanceof URL ? url.href : String(url);
  const doFetch = opts.fetch ?? globalThis.fetch;
  if (typeof doFetch !== 'function') throw new FetchError(href, 'network', 'no fetch in this runtime');
  const timeoutMs = opts.timeoutMs ?? 30_000;
  if (!(timeoutMs >= 0)) throw new RangeError(`fetchBytes: timeoutMs must be ≥ 0, got ${timeoutMs}`);
  const check = opts.expect === 'safetensors' ? expectSafetensors : opts.expect;
  const controller = new AbortController();
  let timer: ReturnType<typeof setTimeout> | undefined;
  let timedOut = false;
  const arm = () => {
    if (timer !== undefined) clearTimeout(timer);
    if (timeoutMs > 0 && Number.isFinite(timeoutMs)) {
      timer = setTimeout(() => {
        timedOut = true;
        controller.abort();
      }, timeoutMs);
    }
  };
  const outer = opts.signal;
  const onAbort = () => controller.abort();
  if (outer?.aborted) throw new FetchError(href, 'aborted', 'aborted before the request was sent', { cause: outer.reason });
  outer?.addEventListener('abort', onAbort, { once: true });
  // Why the request stopped, when it was stopped on purpose.
  const stopped = (e: unknown): FetchError | undefined => {
    if (timedOut) return new FetchError(href, 'timeout', `no data for ${timeoutMs} ms (timeoutMs)`, { cause: e });
    if (outer?.aborted) return new FetchError(href, 'aborted', 'aborted', { cause: outer.reason ?? e });
    return undefined;
  };
  arm();
  try {
    let res: Response;
    try {
      res = await doFetch(href, { signal: controller.signal, redirect: 'follow', ...(opts.headers ? { headers: opts.headers } : {}) });
    } catch (e) {
      throw stopped(e) ?? new FetchError(href, 'network', `network error: ${describe(e)}`, { cause: e });
    }
    arm();
    if (!res.ok) {
      await res.body?.cancel().catch(() => {});
      throw new FetchError(href, 'http', `HTTP ${res.status}${res.statusText ? ` ${res.statusText}` : ''}`, { status: res.status });
    }
    if (opts.onResponse) {
      try {
        opts.onResponse(res);
      } catch (e) {
        await res.body?.cancel().catch(() => {});
        throw e;
      }
    }
    const lengthHeader = res.headers.get('content-length');
    const encoded = (res.headers.get('content-encoding') ?? 'identity') !== 'identity';
    const declared = lengthHeader !== null && /^\d+$/.test(lengthHeader) && !encoded ? Number(lengthHeader) : undefined;
    if (declared !== undefined && opts.maxBytes !== undefined && declared > opts.maxBytes) {
      await res.body?.cancel().catch(() => {});
      throw new FetchError(href, 'too-large', `content-length ${declared} is beyond the ${opts.maxBytes}-byte limit (maxBytes)`, { status: res.status });
    }
    const contentType = res.headers.get('content-type');
    const chunks: Uint8Array[] = [];
    let received = 0;
    let checked = !check;
    const body = res.body;
    if (!body) {
      const buf = new Uint8Array(await res.arrayBuffer());
      chunks.push(buf);
      received = buf.length;
      opts.onChunk?.(buf, received, declared);
    } else {
      const reader = body.getReader();
      for (;;) {
        let r: ReadableStreamReadResult<Uint8Array>;
        try {
          r = await reader.read();
        } catch (e) {
          const why = stopped(e);
          if (why) throw why;
          const of = declared !== undefined ? ` after ${received} of ${declared} bytes` : ` after ${received} bytes`;
          throw new FetchError(href, declared !== undefined && received < declared ? 'truncated' : 'network', `connection lost${of}: ${describe(e)}`, {
            cause: e,
            status: res.status,
          });
        }
        if (r.done) break;
        arm();
        chunks.push(r.value);
        received += r.value.byteLength;
        opts.onChunk?.(r.value, received, declared);
        if ((opts.maxBytes !== undefined && received > opts.maxBytes) || (declared !== undefined && received > declared)) {
          await reader.cancel().catch(() => {});
          throw declared !== undefined && received > declared
            ? new FetchError(href, 'content', `the body is longer than its content-length ${declared}`, { status: res.status })
            : new FetchError(href, 'too-large', `the body passes the ${opts.maxBytes}-byte limit (maxBytes)`, { status: res.status });
        }
        if (!checked && received >= 64) {
          const reason = check!(concat(chunks, received), contentType);
          checked = true;
          if (reason) {
            await reader.cancel().catch(() => {});
            throw new FetchError(href, 'content', reason, { status: res.status });
          }
        }
      }
    }
    if (declared !== undefined && received < declared) {
      throw new FetchError(href, 'truncated', `the body ended after ${received} of the ${declared} bytes its content-length declares (truncated)`, { status: res.status });
    }
    const bytes = concat(chunks, received);
    if (!checked) {
      const reason = check!(bytes, contentType);
      if (reason) throw new FetchError(href, 'content', reason, { status: res.status });
    }
    return bytes;
  } finally {
    if (timer !== undefined) clearTimeout(timer);
    outer?.removeEventListener('abort', onAbort);
  }
}

export interface FetchHeadOptions extends Pick<FetchBytesOptions, 'signal' | 'timeoutMs' | 'fetch' | 'headers'> {
  /** 'manual' (default): a redirect is returned as is, so its headers can be read (Node; browsers give an opaque one). */
  redirect?: RequestRedirect;
}

/**
 * A HEAD request with the same timeout, abort and network-error handling as {@link fetchBytes}; any status
 * is returned (the caller reads it and the headers). Throws a {@link FetchError} for a timeout, an abort or
 * a network error.
 */
export async function fetchHead(url: string | URL, opts: FetchHeadOptions = {}): Promise<Response> {
  const href = url instanceof URL ? url.href : String(url);
  const doFetch = opts.fetch ?? globalThis.fetch;
  if (typeof doFetch !== 'function') throw new FetchError(href, 'network', 'no fetch in this runtime');
  const timeoutMs = opts.timeoutMs ?? 30_000;
  const controller = new AbortController();
  let timedOut = false;
  const timer =
    timeoutMs > 0 && Number.isFinite(timeoutMs)
      ? setTimeout(() => {
          timedOut = true;
          controller.abort();
        }, timeoutMs)
      : undefined;
  const outer = opts.signal;
  if (outer?.aborted) throw new FetchError(href, 'aborted', 'aborted before the request was sent', { cause: outer.reason });
  const onAbort = () => controller.abort();
  outer?.addEventListener('abort', onAbort, { once: true });
  try {
    return await doFetch(href, {
      method: 'HEAD',
      signal: controller.signal,
      redirect: opts.redirect ?? 'manual',
      ...(opts.headers ? { headers: opts.headers } : {}),
    });
  } catch (e) {
    if (timedOut) throw new FetchError(href, 'timeout', `no answer for ${timeoutMs} ms (timeoutMs)`, { cause: e });
    if (outer?.aborted) throw new FetchError(href, 'aborted', 'aborted', { cause: outer.reason ?? e });
    throw new FetchError(href, 'network', `network error: ${describe(e)}`, { cause: e });
  } finally {
    if (timer !== undefined) clearTimeout(timer);
    outer?.removeEventListener('abort', onAbort);
  }
}

function concat(chunks: Uint8Array[], total: number): Uint8Array {
  if (chunks.length === 1 && chunks[0]!.byteLength === total) return chunks[0]!;
  const out = new Uint8Array(total);
  let o = 0;
  for (const c of chunks) {
    if (o + c.byteLength > total) {
      out.set(c.subarray(0, total - o), o);
      break;
    }
    out.set(c, o);
    o += c.byteLength;
  }
  if (chunks.length > 1) {
    chunks.length = 0;
    chunks.push(out);
  }
  return out;
}

function describe(e: unknown): string {
  const err = e as { message?: string; cause?: { code?: string; message?: string } };
  const cause = err?.cause;
  const inner = cause ? ` (${[cause.code, cause.message].filter(Boolean).join(': ')})` : '';
  return `${err?.message ?? String(e)}${inner}`;
}
