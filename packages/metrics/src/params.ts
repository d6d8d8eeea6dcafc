/** Parameter counts of a module, in total and per group of names. */
import type { Module } from '@softbias/tensor-ops';

export interface ParameterCount {
  total: number;
  trainable: number;
  /** Scalars per name prefix of `depth` components (e.g. 'blocks.0' at depth 2), in registration order. */
  groups: { name: string; count: number; trainable: number }[];
}

/** Count a module's parameters (scalars), grouped by the first `depth` name components (default 1). */
export function countParameters(module: Module, depth = 1): ParameterCount {
  const groups = new Map<string, { count: number; trainable: number }>();
  let total = 0;
  let trainable = 0;
  for (const [name, p] of module.namedParameters()) {
    const n = p.variable.size;
    total += n;
    if (p.trainable) trainable += n;
    const key = name.split('.').slice(0, depth).join('.');
    const g = groups.get(key) ?? { count: 0, trainable: 0 };
    g.count += n;
    if (p.trainable) g.trainable += n;
    groups.set(key, g);
  }
  return { total, trainable, groups: [...groups].map(([name, g]) => ({ name, ...g })) };
}

/** 5 717 416 → '5.72M', 1 254 000 000 → '1.25G'. */
export function formatCount(n: number, digits = 2): string {
  const a = Math.abs(n);
  if (a >= 1e9) return `${(n / 1e9).toFixed(digits)}G`;
  if (a >= 1e6) return `${(n / 1e6).toFixed(digits)}M`;
  if (a >= 1e3) return `${(n / 1e3).toFixed(digits)}K`;
  return String(n);
}
