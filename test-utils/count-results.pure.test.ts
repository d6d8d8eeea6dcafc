/**
 * scripts/count-results.mjs (npm test's closing line): a failing beforeAll or describe body, whose tests vitest
 * reports as skipped, counts as failed. Runs vitest itself on three small spec files in a temporary directory.
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it, expect } from 'vitest';
import { countResults } from '../scripts/count-results.mjs';
import { repoRoot } from './index.js';

describe('npm test counts (scripts/count-results.mjs)', () => {
  it('tests of a failing beforeAll / describe body count as failed; a passing file keeps its skips', () => {
    const dir = mkdtempSync(join(tmpdir(), 'softbias-count-'));
    symlinkSync(join(repoRoot, 'node_modules'), join(dir, 'node_modules'));
    writeFileSync(join(dir, 'vitest.config.mjs'), "export default { test: { include: ['*.test.mjs'] } };\n");
    writeFileSync(
      join(dir, 'hook.test.mjs'),
      "import { describe, it, beforeAll } from 'vitest';\n" +
        "describe('hook', () => { beforeAll(() => { throw new Error('boom'); }); it('a', () => {}); it('b', () => {}); });\n" +
        "it('c', () => {});\n",
    );
    writeFileSync(join(dir, 'body.test.mjs'), "import { describe, it } from 'vitest';\ndescribe('body', () => { it('d', () => {}); throw new Error('boom'); });\n");
    writeFileSync(join(dir, 'fine.test.mjs'), "import { it } from 'vitest';\nit('e', () => {});\nit.skip('f', () => {});\n");
    const out = join(dir, 'report.json');
    const r = spawnSync(process.execPath, [join(repoRoot, 'node_modules/vitest/vitest.mjs'), 'run', '--reporter=json', `--outputFile.json=${out}`], {
      cwd: dir,
      encoding: 'utf8',
      env: { ...process.env, SOFTBIAS_BACKEND: '' },
    });
    expect(r.status).not.toBe(0);
    const report = JSON.parse(readFileSync(out, 'utf8'));
    // What vitest itself says: no failed test at all.
    expect(report.numFailedTests).toBe(0);
    const c = countResults(report, dir + '/');
    expect(c).toEqual({ passed: 2, failed: 3, skipped: 1, failedFiles: expect.arrayContaining(['hook.test.mjs (2)', 'body.test.mjs (1)']) });
  }, 60_000);

  it('from a report: a failed file without tests is one failure; a failed test in a passing file still counts', () => {
    const c = countResults({
      testResults: [
        { name: '/r/x.test.ts', status: 'failed', assertionResults: [] },
        { name: '/r/y.test.ts', status: 'passed', assertionResults: [{ status: 'passed' }, { status: 'skipped' }, { status: 'todo' }] },
        { name: '/r/z.test.ts', status: 'failed', assertionResults: [{ status: 'passed' }, { status: 'failed' }, { status: 'skipped' }] },
      ],
    }, '/r/');
    expect(c).toEqual({ passed: 2, failed: 3, skipped: 2, failedFiles: ['x.test.ts (1)', 'z.test.ts (2)'] });
  });
});
