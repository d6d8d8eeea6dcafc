/**
 * vitest.exclusions.ts: every exclusion, reduction and tolerance factor names a test id that a spec uses, so a
 * renamed or deleted test cannot leave a stale entry (or an entry that silently matches nothing).
 */
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it, expect } from 'vitest';
import { EXCLUSIONS, REDUCTIONS, TOLERANCE_FACTORS } from '../vitest.exclusions.js';
import { listModels as convitModels } from '@softbias/models-convit';
import { listModels as convnextModels } from '@softbias/models-convnextv2';
import { repoRoot } from './index.js';

function tsFiles(dir: string, out: string[] = []): string[] {
  let names: string[];
  try {
    names = readdirSync(dir);
  } catch {
    return out;
  }
  for (const n of names) {
    if (n === 'node_modules' || n === 'dist') continue;
    const p = join(dir, n);
    if (statSync(p).isDirectory()) tsFiles(p, out);
    else if (n.endsWith('.ts')) out.push(p);
  }
  return out;
}

const roots = [
  ...readdirSync(join(repoRoot, 'packages')).flatMap((d) => [join(repoRoot, 'packages', d, 'src'), join(repoRoot, 'packages', d, 'test')]),
  ...readdirSync(join(repoRoot, 'examples')).map((d) => join(repoRoot, 'examples', d, 'test')),
];
const sources = roots.flatMap((r) => tsFiles(r)).map((p) => readFileSync(p, 'utf8'));
const all = sources.join('\n');

/** Ids built in a template literal from a registry name: the prefix and the names it may take. */
const FAMILIES: [string, string[]][] = [
  ['convit/registry/', convitModels()],
  ['convnextv2/registry/', convnextModels()],
];

function used(id: string): boolean {
  if (id === '*') return true;
  if (id.endsWith('*')) {
    const prefix = id.slice(0, -1);
    return all.includes(`'${prefix}`) || all.includes(`\`${prefix}`);
  }
  if (all.includes(`'${id}'`) || all.includes(`\`${id}\``)) return true;
  for (const [prefix, names] of FAMILIES) {
    if (id.startsWith(prefix) && names.includes(id.slice(prefix.length)) && all.includes(`\`${prefix}\${`)) return true;
  }
  return false;
}

describe('vitest.exclusions.ts', () => {
  const entries = [
    ...EXCLUSIONS.map((e) => ({ kind: 'exclusion', ...e })),
    ...REDUCTIONS.map((e) => ({ kind: 'reduction', ...e })),
    ...TOLERANCE_FACTORS.map((e) => ({ kind: 'tolerance factor', ...e })),
  ];

  it('every entry names a test id a spec uses, and gives a reason', () => {
    const stale = entries.filter((e) => !used(e.id)).map((e) => `${e.kind} ${e.backend}:${e.id}`);
    expect(stale).toEqual([]);
    for (const e of entries) expect(e.reason.length, `${e.kind} ${e.id}: reason`).toBeGreaterThan(20);
  });

  it('no entry is listed twice for one backend', () => {
    const keys = entries.map((e) => `${e.kind}:${e.backend}:${e.id}`);
    expect(keys.filter((k, i) => keys.indexOf(k) !== i)).toEqual([]);
  });

  it('no tolerance factor on cpu or wasm: there fixture tensors are compared at their own suggested_atol', () => {
    expect(TOLERANCE_FACTORS.filter((t) => t.backend !== 'webgpu')).toEqual([]);
  });

  it('no spec shrinks its work on webgpu by testing the backend itself outside vitest.exclusions.ts', () => {
    // Backend-specific tests and extra checks (`it.runIf(currentBackend === 'wasm')`, `if (currentBackend ===
    // 'wasm')` around the wasm kernels' own bounds) are allowed; a condition on webgpu inside a spec, or a ternary
    // on the backend, is a reduction or an exclusion and belongs in vitest.exclusions.ts.
    const offenders: string[] = [];
    for (const r of roots)
      for (const p of tsFiles(r)) {
        if (!p.endsWith('.test.ts')) continue;
        readFileSync(p, 'utf8').split('\n').forEach((line, i) => {
          const onWebgpu = /currentBackend\s*[!=]==\s*'webgpu'|'webgpu'\s*[!=]==\s*currentBackend/.test(line);
          const ternary = /currentBackend\s*[!=]==\s*'[a-z]+'\s*\)?\s*\?/.test(line);
          if ((onWebgpu || ternary) && !/\b(runIf|skipIf)\(currentBackend/.test(line)) offenders.push(`${p.slice(repoRoot.length)}:${i + 1}`);
        });
      }
    expect(offenders).toEqual([]);
  });
});
