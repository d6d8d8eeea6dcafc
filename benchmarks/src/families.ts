/**
 * Kernel families by thread count: the tf.profile kernel profiles of one call at several thread counts, summed
 * per kernel name (`_FusedMatMul` counted with BatchMatMul; softbias' fused kernels keep their `Softbias…`
 * names), with the speed-up from the fewest threads to the most.
 */
import { fmtMs } from './stats.js';
import type { KernelProfile } from './types.js';

export interface KernelFamilyRow {
  family: string;
  /** ms per thread count (summed kernel time in one profiled forward). */
  ms: Record<number, number>;
  /** ms at the fewest threads ÷ ms at the most. */
  speedup?: number;
  /** Share of the kernel time at the fewest threads. */
  share: number;
}

const familyOf = (kernel: string): string => (kernel === '_FusedMatMul' ? 'BatchMatMul' : kernel);

export function kernelFamilies(profiles: Map<number, KernelProfile>): { totalMs: Record<number, number>; rows: KernelFamilyRow[] } {
  const threads = [...profiles.keys()].sort((a, b) => a - b);
  const lo = threads[0]!;
  const hi = threads[threads.length - 1]!;
  const byFamily = new Map<string, Record<number, number>>();
  const totalMs: Record<number, number> = {};
  for (const [t, p] of profiles) {
    totalMs[t] = p.kernelMs;
    for (const k of p.kernels) {
      const f = (byFamily.get(familyOf(k.name)) ?? {}) as Record<number, number>;
      f[t] = (f[t] ?? 0) + k.totalMs;
      byFamily.set(familyOf(k.name), f);
    }
  }
  const rows: KernelFamilyRow[] = [...byFamily].map(([fam, ms]) => {
    const row: KernelFamilyRow = { family: fam, ms, share: totalMs[lo] ? (ms[lo] ?? 0) / totalMs[lo]! : 0 };
    if (lo !== hi && ms[lo] && ms[hi]) row.speedup = ms[lo]! / ms[hi]!;
    return row;
  });
  rows.sort((a, b) => (b.ms[lo] ?? 0) - (a.ms[lo] ?? 0));
  return { totalMs, rows };
}


/** A Markdown table of the families (families under 0.05 ms and 0.1% left out). */
export function familiesMarkdown(title: string, totalMs: Record<number, number>, rows: KernelFamilyRow[]): string[] {
  const ts = Object.keys(totalMs).map(Number).sort((a, b) => a - b);
  const th = (t: number): string => `${t} thread${t > 1 ? 's' : ''}`;
  const L = [`**${title}** — kernel time ${ts.map((t) => `${fmtMs(totalMs[t]!)} at ${th(t)}`).join(', ')}`, ''];
  L.push(`| kernel family | ${ts.map(th).join(' | ')} | speed-up | share at ${th(ts[0]!)} |`, `|---|${ts.map(() => '---|').join('')}---|---|`);
  for (const row of rows) {
    if ((row.ms[ts[0]!] ?? 0) < 0.05 && row.share < 0.001) continue;
    const sp = row.speedup === undefined ? '–' : `${row.speedup.toFixed(2)}×`;
    L.push(`| ${row.family} | ${ts.map((t) => (row.ms[t] !== undefined ? fmtMs(row.ms[t]!) : '–')).join(' | ')} | ${sp} | ${(100 * row.share).toFixed(1)}% |`);
  }
  L.push('');
  return L;
}
