// One map from the workspace's package names to their TypeScript sources, for everything that runs the packages
// without a build (vitest.config.ts, test-utils/child.ts, the CLI's real-process specs, the benchmark bundler):
// '@softbias/<dir>' → packages/<dir>/src/index.ts, and every subpath export of its package.json ("./sub" →
// ./dist/x.js) → packages/<dir>/src/x.ts. Matched exactly, so '@softbias/x' never swallows '@softbias/x/sub'.
import { existsSync, readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';

/** @param {string} root the repository root. @returns {Map<string, string>} import name → source file. */
export function softbiasSources(root) {
  const map = new Map([['@softbias/test-utils', join(root, 'test-utils/index.ts')]]);
  for (const dir of readdirSync(join(root, 'packages'))) {
    const index = join(root, 'packages', dir, 'src', 'index.ts');
    if (existsSync(index)) map.set(`@softbias/${dir}`, index);
    const pkgPath = join(root, 'packages', dir, 'package.json');
    const exportsMap = existsSync(pkgPath) ? (JSON.parse(readFileSync(pkgPath, 'utf8')).exports ?? {}) : {};
    for (const [sub, target] of Object.entries(exportsMap)) {
      const file = target && typeof target === 'object' ? target.default : undefined;
      if (sub === '.' || typeof file !== 'string' || !file.startsWith('./dist/') || !file.endsWith('.js')) continue;
      const source = join(root, 'packages', dir, 'src', file.slice('./dist/'.length).replace(/\.js$/, '.ts'));
      if (existsSync(source)) map.set(`@softbias/${dir}/${sub.slice(2)}`, source);
    }
  }
  return map;
}

/**
 * An esbuild plugin resolving those names to the sources; an unknown '@softbias/…' name is an error naming it.
 * @param {string} root
 */
export function softbiasSourcesPlugin(root) {
  const map = softbiasSources(root);
  return {
    name: 'softbias-sources',
    setup(b) {
      b.onResolve({ filter: /^@softbias\// }, (args) => {
        const path = map.get(args.path);
        if (path) return { path };
        return { errors: [{ text: `${args.path}: not a workspace package or subpath export (have: ${[...map.keys()].join(', ')})` }] };
      });
    },
  };
}

/**
 * The same map as Vite / vitest `resolve.alias` entries, each matched exactly.
 * @param {string} root
 * @returns {{ find: RegExp; replacement: string }[]}
 */
export function softbiasAliasEntries(root) {
  return [...softbiasSources(root)].map(([name, path]) => ({
    find: new RegExp(`^${name.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&')}$`),
    replacement: path,
  }));
}
