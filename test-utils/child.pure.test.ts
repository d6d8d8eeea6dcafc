import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it, vi } from 'vitest';
import { runTsInChild } from './child.js';

const entry = fileURLToPath(new URL('./flaky.child.ts', import.meta.url));
const dir = mkdtempSync(join(tmpdir(), 'softbias-child-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('runTsInChild', () => {
  it('retries once a child killed with nothing printed, and says so', () => {
    const warn = vi.spyOn(console, 'warn').mockImplementation(() => {});
    const r = runTsInChild<{ ok: boolean }>(entry, { args: ['die-once', join(dir, 'marker')] });
    expect(r.result).toEqual({ ok: true });
    expect(r.how).toMatch(/first attempt: child killed by SIGKILL after [\d.]+ s; stderr empty; stdout empty/);
    expect(warn).toHaveBeenCalledTimes(1);
    warn.mockRestore();
  });

  it('a child killed twice has no result; the message has both attempts and how far it got', () => {
    const warn = vi.spyOn(console, 'warn').mockImplementation(() => {});
    const r = runTsInChild(entry, { args: ['die'] });
    expect(r.result).toBeUndefined();
    expect(r.signal).toBe('SIGKILL');
    expect(r.how).toMatch(/^child killed by SIGKILL .*stdout: PHASE about to die.*\(first attempt: child killed by SIGKILL/s);
    warn.mockRestore();
  });

  it('an ordinary failure (exit status 1) is not retried', () => {
    const warn = vi.spyOn(console, 'warn').mockImplementation(() => {});
    const r = runTsInChild(entry, { args: ['exit1'] });
    expect(r.status).toBe(1);
    expect(r.how).toMatch(/^child exit status 1 after [\d.]+ s; stderr: exit1: failing on purpose/);
    expect(r.how).not.toContain('first attempt');
    expect(warn).not.toHaveBeenCalled();
    warn.mockRestore();
  });

  it('a child past its time limit is killed and reported as such', () => {
    const warn = vi.spyOn(console, 'warn').mockImplementation(() => {});
    const r = runTsInChild(fileURLToPath(new URL('./flaky.child.ts', import.meta.url)), { args: ['exit1'], timeoutMs: 1 });
    // 1 ms is shorter than Node's start: killed before it can exit by itself.
    expect(r.how).toMatch(/killed by SIGTERM; ran past 0.001 s/);
    warn.mockRestore();
  });
});
