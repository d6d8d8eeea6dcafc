// Counts of a vitest JSON report, per file and by the file's status, for `npm test`'s closing line.
//
// vitest marks the tests of a failing `beforeAll` or `describe` body as skipped (and a file that fails to load
// has no tests at all), so its own numPassed/numFailed totals can read "0 failed" for a failed run. Here, in a
// file whose status is failed, every test that did not pass counts as failed (an intended skip there too: the
// file fails either way), and a failed file without tests counts as one failure. Skips count only in files that
// passed.
export function countResults(report, root = '') {
  let passed = 0;
  let failed = 0;
  let skipped = 0;
  const failedFiles = [];
  for (const f of report.testResults ?? []) {
    const tests = f.assertionResults ?? [];
    const ok = tests.filter((t) => t.status === 'passed').length;
    passed += ok;
    if (f.status === 'failed') {
      const n = Math.max(1, tests.length - ok);
      failed += n;
      failedFiles.push(`${root && f.name.startsWith(root) ? f.name.slice(root.length) : f.name} (${n})`);
    } else {
      const bad = tests.filter((t) => t.status === 'failed').length;
      failed += bad;
      skipped += tests.filter((t) => t.status === 'skipped' || t.status === 'pending' || t.status === 'todo').length;
    }
  }
  return { passed, failed, skipped, failedFiles };
}
