/**
 * fetchBytes and weights from a URL against a real 127.0.0.1 server (node:http): timeout, abort, an HTML page
 * with status 200, 404, a dropped connection, a body shorter than its content-length. Before, readSafetensors
 * on a URL had no timeout or signal (it hung), reported HTML as a header-size error, and a dropped connection
 * surfaced as a bare TypeError.
 */
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import { createServer, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { FetchError, SafetensorsError, fetchBytes, readSafetensors, serializeSafetensors } from '@softbias/tensor-ops';

const weights = serializeSafetensors({ w: { shape: [64], data: new Float32Array(64).fill(1.5) } });
let server: Server;
let base = '';
const routes: Record<string, (res: ServerResponse) => void> = {
  '/ok.safetensors': (res) => {
    res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': weights.length });
    res.end(weights);
  },
  '/html': (res) => {
    const page = '<!DOCTYPE html><html><head><title>Sign in</title></head><body>please log in to download this file</body></html>';
    res.writeHead(200, { 'content-type': 'text/html; charset=utf-8', 'content-length': Buffer.byteLength(page) });
    res.end(page);
  },
  '/missing': (res) => {
    res.writeHead(404, { 'content-type': 'text/plain' });
    res.end('not here');
  },
  '/never': () => {}, // accepts, never answers
  '/stall': (res) => {
    res.writeHead(200, { 'content-length': weights.length });
    res.write(weights.subarray(0, 100)); // then nothing
  },
  '/drop': (res) => {
    res.socket?.destroy(); // the connection drops before any response
  },
  '/short': (res) => {
    res.writeHead(200, { 'content-length': weights.length });
    res.write(weights.subarray(0, 200), () => res.socket?.destroy()); // half the body, then the connection closes
  },
};

beforeAll(async () => {
  server = createServer((req, res) => routes[req.url ?? '']?.(res));
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});
afterAll(async () => {
  server.closeAllConnections();
  await new Promise((r) => server.close(r));
});

async function failure(p: Promise<unknown>): Promise<FetchError> {
  const e = await p.then(
    () => undefined,
    (err: unknown) => err,
  );
  expect(e).toBeInstanceOf(FetchError);
  return e as FetchError;
}

describe('fetchBytes on a local server', () => {
  it('reads a file and checks its first bytes', async () => {
    const bytes = await fetchBytes(`${base}/ok.safetensors`, { expect: 'safetensors' });
    expect(Array.from(bytes)).toEqual(Array.from(weights));
    const file = await readSafetensors(`${base}/ok.safetensors`);
    expect(file.getFloat32('w').data[63]).toBe(1.5);
  });

  it('an HTML page with status 200 is "not a safetensors file (got HTML)", naming the URL', async () => {
    const e = await failure(fetchBytes(`${base}/html`, { expect: 'safetensors' }));
    expect(e.kind).toBe('content');
    expect(e.message).toMatch(new RegExp(`not a safetensors file \\(got HTML, content-type text/html.*\\(${base}/html\\)$`));
    await expect(readSafetensors(`${base}/html`)).rejects.toThrow(SafetensorsError);
    await expect(readSafetensors(`${base}/html`)).rejects.toThrow(/safetensors: not a safetensors file \(got HTML/);
  });

  it('404 is an http error with the status', async () => {
    const e = await failure(fetchBytes(`${base}/missing`));
    expect([e.kind, e.status]).toEqual(['http', 404]);
    expect(e.message).toBe(`HTTP 404 Not Found (${base}/missing)`);
  });

  it('no answer: a timeout after timeoutMs; a stall mid-body too', async () => {
    const t0 = Date.now();
    const e = await failure(fetchBytes(`${base}/never`, { timeoutMs: 150 }));
    expect(e.kind).toBe('timeout');
    expect(e.message).toMatch(/no data for 150 ms \(timeoutMs\)/);
    expect(Date.now() - t0).toBeLessThan(3000);
    const s = await failure(fetchBytes(`${base}/stall`, { timeoutMs: 150 }));
    expect(s.kind).toBe('timeout');
    await expect(readSafetensors(`${base}/never`, { timeoutMs: 100 })).rejects.toThrow(/no data for 100 ms/);
  });

  it('an AbortSignal stops the request', async () => {
    const c = new AbortController();
    setTimeout(() => c.abort(new Error('user cancelled')), 50);
    const e = await failure(fetchBytes(`${base}/never`, { signal: c.signal, timeoutMs: 10_000 }));
    expect(e.kind).toBe('aborted');
    expect(e.message).toBe(`aborted (${base}/never)`);
    const already = await failure(fetchBytes(`${base}/ok.safetensors`, { signal: AbortSignal.abort() }));
    expect(already.kind).toBe('aborted');
  });

  it('a dropped connection is a network error naming the URL (not a bare TypeError)', async () => {
    const e = await failure(fetchBytes(`${base}/drop`));
    expect(e.kind).toBe('network');
    expect(e.message).toMatch(new RegExp(`^network error: .*\\(${base}/drop\\)$`));
    expect(e.cause).toBeInstanceOf(Error);
    const closed = createServer();
    await new Promise<void>((r) => closed.listen(0, '127.0.0.1', () => r()));
    const port = (closed.address() as AddressInfo).port;
    await new Promise((r) => closed.close(r));
    const refused = await failure(fetchBytes(`http://127.0.0.1:${port}/x`));
    expect(refused.message).toMatch(/network error: .*ECONNREFUSED/);
  });

  it('a body shorter than its content-length is truncated, with the counts', async () => {
    const e = await failure(fetchBytes(`${base}/short`));
    expect(e.kind).toBe('truncated');
    expect(e.message).toMatch(new RegExp(`after 200 of ${weights.length} bytes`));
    await expect(fetchBytes(`${base}/ok.safetensors`, { maxBytes: 100 })).rejects.toThrow(/content-length \d+ is beyond the 100-byte limit/);
  });
});
