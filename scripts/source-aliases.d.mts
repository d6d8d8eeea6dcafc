/** Types of source-aliases.mjs (see there). */
export function softbiasSources(root: string): Map<string, string>;
export function softbiasSourcesPlugin(root: string): { name: string; setup(build: unknown): void };
