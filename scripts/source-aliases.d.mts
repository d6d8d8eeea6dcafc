/** Types of source-aliases.mjs (see there). */
import type { Plugin } from 'esbuild';
export function softbiasSources(root: string): Map<string, string>;
export function softbiasSourcesPlugin(root: string): Plugin;
export function softbiasAliasEntries(root: string): { find: RegExp; replacement: string }[];
