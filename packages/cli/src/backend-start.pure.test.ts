/**
 * startBackend: every command's backend start. In `auto` mode without --verbose it prints one line (Dawn's
 * adapter warnings stay in the probe's child process); --verbose prints each skipped backend's full reason.
 */
import { describe, expect, it } from 'vitest';
import { startBackend } from './backend-start.js';

describe('startBackend', () => {
  it('a named backend: one line saying what runs', async () => {
    const lines: string[] = [];
    const info = await startBackend('cpu', { log: (l) => lines.push(l) });
    expect(info.backend).toBe('cpu');
    expect(lines).toEqual([expect.stringMatching(/^backend: cpu, plain JavaScript kernels/)]);
  });

  it('auto: one line, the skipped backends in a clause; verbose: their full reasons', async () => {
    const quiet: string[] = [];
    const info = await startBackend('auto', { log: (l) => quiet.push(l) });
    expect(quiet, quiet.join('\n')).toHaveLength(1);
    expect(quiet[0]).toMatch(new RegExp(`^backend: ${info.backend}, `));
    const skipped = info.attempts.filter((a) => !a.ok);
    if (skipped.length) {
      expect(quiet[0]).toMatch(/\(auto: .*; --verbose says why\)$/);
      const loud: string[] = [];
      await startBackend('auto', { verbose: true, log: (l) => loud.push(l) });
      for (const a of skipped) expect(loud.join('\n')).toContain(`${a.backend} skipped: `);
    }
  }, 60_000);
});
