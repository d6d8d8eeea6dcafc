/**
 * README examples run as written in a fresh `npm init -y` project: every ```js block is either a complete `.mjs`
 * file (its first line names it: `// example.mjs — node example.mjs`) or says on its first line that it is a
 * fragment. Complete ones must parse as ES modules (no TypeScript syntax) and import only names their packages
 * export. (Running them needs the packed tarballs: that trial is in the session notes, not in CI.)
 */
import { describe, expect, it } from 'vitest';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, readdirSync, existsSync, writeFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { tmpdir } from 'node:os';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('..', import.meta.url));

const readmes = [
  'README.md',
  ...readdirSync(join(root, 'packages')).map((p) => `packages/${p}/README.md`),
  ...readdirSync(join(root, 'examples')).map((p) => `examples/${p}/README.md`),
].filter((p) => existsSync(join(root, p)));

interface Block {
  file: string;
  line: number;
  code: string;
}

function jsBlocks(file: string): Block[] {
  const lines = readFileSync(join(root, file), 'utf8').split('\n');
  const out: Block[] = [];
  for (let i = 0; i < lines.length; i++) {
    const fence = /^```(\w+)/.exec(lines[i]);
    if (!fence) continue;
    const start = i;
    const body: string[] = [];
    for (i++; i < lines.length && !lines[i].startsWith('```'); i++) body.push(lines[i]);
    if (['js', 'javascript', 'mjs', 'ts', 'typescript'].includes(fence[1])) out.push({ file, line: start + 1, code: body.join('\n') });
  }
  return out;
}

const blocks = readmes.flatMap(jsBlocks);
const isFragment = (b: Block) => /A fragment/.test(b.code.split('\n')[0]);
const complete = blocks.filter((b) => !isFragment(b));

/** `import { a, b as c } from 'pkg'` → [['pkg', ['a', 'b']]] (multi-line lists included). */
function namedImports(code: string): [string, string[]][] {
  const out: [string, string[]][] = [];
  for (const m of code.matchAll(/import\s*\{([^}]*)\}\s*from\s*['"]([^'"]+)['"]/g)) {
    const names = m[1]
      .split(',')
      .map((s) => s.trim().split(/\s+as\s+/)[0].trim())
      .filter(Boolean);
    out.push([m[2], names]);
  }
  return out;
}

describe('README examples', () => {
  it('there are examples to check, and every block is a named .mjs file or a marked fragment', () => {
    expect(complete.length).toBeGreaterThan(10);
    const unmarked = complete
      .filter((b) => !/^\/\/ (node )?[\w.-]+\.mjs\b/.test(b.code.split('\n')[0]))
      .map((b) => `${b.file}:${b.line}`);
    expect(unmarked, 'blocks that are neither `// name.mjs …` files nor marked `A fragment`').toEqual([]);
  });

  it('complete examples parse as ES modules (node --check: no TypeScript syntax)', () => {
    const dir = mkdtempSync(join(tmpdir(), 'readme-'));
    const bad: string[] = [];
    try {
      complete.forEach((b, k) => {
        const path = join(dir, `block${k}.mjs`);
        writeFileSync(path, b.code);
        try {
          execFileSync(process.execPath, ['--check', path], { stdio: 'pipe' });
        } catch (e) {
          const msg = String((e as { stderr?: Buffer }).stderr ?? e).split('\n').find((l) => /Error/.test(l));
          bad.push(`${b.file}:${b.line}: ${msg}`);
        }
      });
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
    expect(bad).toEqual([]);
  });

  it('complete examples import only names their packages export', async () => {
    const missing: string[] = [];
    for (const b of complete) {
      for (const [spec, names] of namedImports(b.code)) {
        if (!spec.startsWith('@softbias/') && spec !== '@tensorflow/tfjs-core') continue;
        const mod = (await import(/* @vite-ignore */ spec)) as Record<string, unknown>;
        for (const n of names) if (!(n in mod)) missing.push(`${b.file}:${b.line}: ${n} from ${spec}`);
      }
    }
    expect(missing).toEqual([]);
  });
});
