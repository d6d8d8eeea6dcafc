import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { runTsInChild } from './child.js';

const entry = fileURLToPath(new URL('./flaky.child.ts', import.meta.url));

// The message of a failed child must say how it ended: CI once lost two children with "expected undefined to be
// defined" and an empty stderr, which told nothing (it was exit 13, see wasm-threads-node.pure.test.ts).
describe('runTsInChild says how a child ended', () => {
  it('killed by a signal: the signal and how far it got (its last progress line)', () => {
    const r = runTsInChild(entry, { args: ['die'] });
    expect(r.result).toBeUndefined();
    expect(r.signal).toBe('SIGKILL');
    expect(r.how).toMatch(/^child killed by SIGKILL after [\d.]+ s; stderr empty; stdout: PHASE about to die/);
  });

  it('an ordinary failure: its status and stderr', () => {
    const r = runTsInChild(entry, { args: ['exit1'] });
    expect(r.status).toBe(1);
    expect(r.how).toMatch(/^child exit status 1 after [\d.]+ s; stderr: exit1: failing on purpose/);
  });

  it('an await that never settled: status 13, named, though Node prints nothing', () => {
    const r = runTsInChild(entry, { args: ['unsettled'] });
    expect(r.status).toBe(13);
    expect(r.stderr).toBe('');
    expect(r.how).toMatch(/^child exit status 13 \(an await that never settled.*\) after [\d.]+ s; stderr empty; stdout empty$/);
  });

  it('past its time limit: killed, and said so', () => {
    // 1 ms is shorter than Node's start: killed before it can exit by itself.
    const r = runTsInChild(entry, { args: ['exit1'], timeoutMs: 1 });
    expect(r.how).toMatch(/^child killed by SIGTERM; ran past 0.001 s/);
  });
});
