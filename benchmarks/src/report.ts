/** Turns the per-backend results into the terminal table, the Markdown report and the JSON file. */
import { familiesMarkdown, kernelFamilies } from './families.js';
import type { PreparedModel } from './prepare.js';
import { argmax, fmtBytes, fmtExp, fmtMs, fmtRate, maxAbs, maxAbsDiff } from './stats.js';
import type { BackendResult, Cell, KernelProfile, ModelResult, Timing } from './types.js';

export interface RunMeta {
  mode: string;
  date: string;
  command: string;
  machine: string;
  node: string;
  /** Set when other work loaded the machine: the numbers are not final. */
  provisional?: string;
  loadAverage: { start: number[]; end?: number[] };
  prepared: PreparedModel[];
}

export interface Agreement {
  backend: string;
  model: string;
  maxAbsDiff: number;
  /** maxAbsDiff / max|reference logit|. */
  relative: number;
  top1Match: boolean;
  against: 'cpu' | 'PyTorch reference';
}

export interface Report {
  meta: RunMeta;
  backends: BackendResult[];
  agreement: Agreement[];
  /** For every model and column (`fwd b1`, `fwd b8`, `train b2`, …), the fastest backend and its img/s. */
  fastest: Record<string, Record<string, { backend: string; imgPerSec: number }>>;
}

export const isTiming = (t: Cell | undefined): t is Timing => !!t && 'medianMs' in t;

/** The cells of a model result keyed by column name. */
function columnsOf(m: ModelResult): [string, Cell][] {
  return [
    ...Object.entries(m.inference).map(([k, c]): [string, Cell] => [`fwd ${k}`, c]),
    ...Object.entries(m.train ?? {}).map(([k, c]): [string, Cell] => [`train ${k}`, c]),
  ];
}

function agreementOf(backend: string, model: string, logits: number[], ref: number[], against: Agreement['against']): Agreement {
  const d = maxAbsDiff(logits, ref);
  return { backend, model, maxAbsDiff: d, relative: d / maxAbs(ref), top1Match: argmax(logits) === argmax(ref), against };
}

export function buildReport(meta: RunMeta, backends: BackendResult[]): Report {
  const agreement: Agreement[] = [];
  const cpu = backends.find((b) => b.spec.id === 'cpu' && b.available);
  for (const p of meta.prepared) {
    const logits = cpu?.models.find((m) => m.model === p.name)?.logits;
    if (logits && p.referenceLogits) agreement.push(agreementOf('cpu', p.name, logits, p.referenceLogits, 'PyTorch reference'));
  }
  for (const b of backends) {
    if (!b.available || b.spec.id === 'cpu') continue;
    for (const m of b.models) {
      const ref = cpu?.models.find((c) => c.model === m.model)?.logits;
      if (ref && m.logits) agreement.push(agreementOf(b.spec.id, m.model, m.logits, ref, 'cpu'));
    }
  }
  const fastest: Report['fastest'] = {};
  for (const b of backends) {
    for (const m of b.models) {
      for (const [col, t] of columnsOf(m)) {
        if (!isTiming(t)) continue;
        fastest[m.model] ??= {};
        const byCol = fastest[m.model]!;
        byCol[col] ??= { backend: b.spec.id, imgPerSec: t.imgPerSec };
        const f = byCol[col]!;
        if (t.imgPerSec > f.imgPerSec) Object.assign(f, { backend: b.spec.id, imgPerSec: t.imgPerSec });
      }
    }
  }
  return { meta, backends, agreement, fastest };
}

function ratioText(r: Report, model: string, col: string, t: Timing): string {
  const f = r.fastest[model]?.[col];
  const ratio = f ? f.imgPerSec / t.imgPerSec : 1;
  return ratio < 1.005 ? '★' : `${ratio.toFixed(ratio < 10 ? 1 : 0)}×`;
}

function cellText(r: Report, model: string, col: string, t: Cell | undefined): string {
  if (!t) return '–';
  if ('skipped' in t) return 'skipped';
  if ('error' in t) return `ERROR ${t.error.slice(0, 60)}`;
  const mark = t.note ? '*' : '';
  if (col.startsWith('train')) return `${fmtMs(t.medianMs)}/step (p95 ${fmtMs(t.p95Ms)}) ${ratioText(r, model, col, t)}${mark}`;
  return `${fmtRate(t.imgPerSec)} img/s, ${fmtMs(t.medianMs)} (p95 ${fmtMs(t.p95Ms)}) ${ratioText(r, model, col, t)}${mark}`;
}

function agreementText(r: Report, backend: string, model: string): string {
  const a = r.agreement.find((x) => x.backend === backend && x.model === model && x.against === 'cpu');
  if (!a) return backend === 'cpu' ? '(reference)' : '–';
  return `${fmtExp(a.maxAbsDiff)} (${fmtExp(a.relative)} rel)${a.top1Match ? '' : ' TOP-1 DIFFERS'}`;
}

function memText(m: ModelResult): string {
  const parts: string[] = [];
  for (const [k, v] of Object.entries(m.memory)) {
    parts.push(`${k}: ${fmtBytes(v.peakBytes)} (+${fmtBytes(v.peakExtraBytes)}), ${v.peakTensors} tensors`);
  }
  return parts.join('; ') || '–';
}

function modelColumns(r: Report, model: string): string[] {
  const cols = new Set<string>();
  for (const b of r.backends) for (const m of b.models) if (m.model === model) for (const [c] of columnsOf(m)) cols.add(c);
  return [...cols].sort((a, b) => (a.startsWith('fwd') === b.startsWith('fwd') ? Number(a.split('b')[1]) - Number(b.split('b')[1]) : a.startsWith('fwd') ? -1 : 1));
}

const modelsOf = (r: Report): string[] => [...new Set(r.backends.flatMap((b) => b.models.map((m) => m.model)))];

/** A plain-text table for the terminal. */
export function terminalTable(r: Report): string {
  const lines: string[] = [];
  for (const model of modelsOf(r)) {
    lines.push('', `== ${model} ==`);
    const cols = modelColumns(r, model);
    const rows: string[][] = [['backend', ...cols, 'logits vs cpu']];
    for (const b of r.backends) {
      if (!b.available) continue;
      const m = b.models.find((x) => x.model === model);
      if (!m) continue;
      if (m.error && Object.keys(m.inference).length === 0) {
        rows.push([b.spec.id, `ERROR: ${m.error.slice(0, 100)}`, ...cols.slice(1).map(() => ''), '']);
        continue;
      }
      const cells = new Map(columnsOf(m));
      rows.push([b.spec.id + (b.correctnessOnly ? ' (c/o)' : ''), ...cols.map((c) => cellText(r, model, c, cells.get(c))), agreementText(r, b.spec.id, model)]);
    }
    const widths = rows[0]!.map((_, i) => Math.max(...rows.map((row) => (row[i] ?? '').length)));
    for (const row of rows) lines.push(row.map((c, i) => c.padEnd(widths[i]!)).join(' │ '));
  }
  const absent = r.backends.filter((b) => !b.available);
  if (absent.length) {
    lines.push('', 'Absent backends:');
    for (const b of absent) lines.push(`  ${b.spec.id}: ${b.reason.split('\n')[0]}`);
  }
  for (const a of r.agreement.filter((x) => x.against === 'PyTorch reference')) {
    lines.push(`cpu vs PyTorch reference logits, ${a.model}: max |Δ| ${fmtExp(a.maxAbsDiff)} (${fmtExp(a.relative)} of max |logit|)${a.top1Match ? '' : ', top-1 differs'}`);
  }
  for (const b of r.backends) {
    for (const e of b.experiments) {
      lines.push('', `${e.name} on ${b.spec.id}${e.error ? `: ERROR ${e.error}` : ''}`);
      for (const row of e.rows) {
        const t = row.timing ? `${fmtMs(row.timing.medianMs)} (p95 ${fmtMs(row.timing.p95Ms)})` : '';
        lines.push(`  ${row.label.padEnd(46)} ${t}${row.value !== undefined ? ` ${row.value}` : ''}${row.note ? `  ${row.note}` : ''}`);
      }
      if (e.maxAbsDiff !== undefined) lines.push(`  outputs agree to max |Δ| ${fmtExp(e.maxAbsDiff)}`);
    }
  }
  lines.push('', '★ fastest backend for that cell; N× = that many times slower than the fastest; * = capped or correctness-only (see the Markdown notes); (c/o) = correctness-only backend.');
  if (r.meta.provisional) lines.push(`PROVISIONAL: ${r.meta.provisional}`);
  return lines.join('\n');
}

const mdEsc = (s: string): string => s.replace(/\|/g, '\\|').replace(/\n/g, ' ');

/** The Markdown report (results/<mode>.md). */
export function markdown(r: Report): string {
  const L: string[] = [];
  L.push(`# softbias benchmark (${r.meta.mode})`, '');
  if (r.meta.provisional) L.push(`> **Provisional numbers, not final:** ${r.meta.provisional}`, '');
  L.push(
    `${r.meta.date} · ${r.meta.machine} · Node ${r.meta.node} · \`${r.meta.command}\` · load average at start ${r.meta.loadAverage.start.map((x) => x.toFixed(2)).join(' ')}${r.meta.loadAverage.end ? `, at end ${r.meta.loadAverage.end.map((x) => x.toFixed(2)).join(' ')}` : ''}`,
    '',
    'Inputs 224×224, NHWC float32. Weights: ' + r.meta.prepared.map((p) => `${p.name} ← ${p.weightsFrom}`).join('; ') + '.',
    '',
    'Cells: images per second at the median, median and p95 latency of the timed runs (after warm-ups), and the ratio to the fastest backend for that column (★ = fastest, N× = N times slower). `fwd bN`: eval forward at batch N. `train bN`: one Adam step on softmax cross-entropy (forward, backward, update) at batch N. Peak memory: bytes held by tfjs tensors during the call (weights included; in brackets what the call added) and the most tensors alive at once.',
    '',
  );
  for (const model of modelsOf(r)) {
    const cols = modelColumns(r, model);
    L.push(`## ${model}`, '', `| backend | ${cols.join(' | ')} | logits vs cpu (max \\|Δ\\|) |`, `|---|${cols.map(() => '---|').join('')}---|`);
    const notes: string[] = [];
    for (const b of r.backends) {
      if (!b.available) continue;
      const m = b.models.find((x) => x.model === model);
      if (!m) continue;
      const cells = new Map(columnsOf(m));
      L.push(`| ${b.spec.label}${b.correctnessOnly ? ' (correctness-only)' : ''} | ${cols.map((c) => mdEsc(cellText(r, model, c, cells.get(c)))).join(' | ')} | ${mdEsc(agreementText(r, b.spec.id, model))} |`);
      const n = [
        m.error ? `error: ${m.error}` : '',
        ...columnsOf(m).map(([k, t]) => (isTiming(t) && t.note ? `${k}: ${t.note}` : 'error' in t ? `${k}: ${t.error}` : '')),
        m.leakedTensors ? `${m.leakedTensors} tensors left after dispose` : '',
        Object.keys(m.memory).length ? `peak memory: ${memText(m)}` : '',
        m.loadMs !== undefined ? `build + load ${fmtMs(m.loadMs)}, ${(m.params / 1e6).toFixed(2)} M parameters` : '',
      ].filter(Boolean);
      if (n.length) notes.push(`- ${b.spec.id}: ${n.join('; ')}`);
    }
    L.push('', ...notes, '');
  }
  const ref = r.agreement.filter((a) => a.against === 'PyTorch reference');
  if (ref.length) {
    L.push('## cpu against the PyTorch reference logits', '', '| model | max \\|Δ\\| | relative | same top-1 |', '|---|---|---|---|');
    for (const a of ref) L.push(`| ${a.model} | ${fmtExp(a.maxAbsDiff)} | ${fmtExp(a.relative)} | ${a.top1Match ? 'yes' : 'NO'} |`);
    L.push('');
  }
  const absent = r.backends.filter((b) => !b.available);
  if (absent.length) {
    L.push('## Absent backends', '');
    for (const b of absent) L.push(`- **${b.spec.label}** (\`${b.spec.id}\`): ${mdEsc(b.reason)}`);
    L.push('');
  }
  const exps = r.backends.flatMap((b) => b.experiments.map((e) => ({ b, e })));
  if (exps.length) {
    L.push('## Experiments', '');
    for (const { b, e } of exps) {
      L.push(`### ${e.name} — ${b.spec.label}`, '', e.description, '');
      if (e.error) L.push(`Error: ${mdEsc(e.error)}`, '');
      if (e.rows.length) {
        L.push('| variant | median | p95 | img/s | value | note |', '|---|---|---|---|---|---|');
        for (const row of e.rows) {
          L.push(`| ${mdEsc(row.label)} | ${row.timing ? fmtMs(row.timing.medianMs) : ''} | ${row.timing ? fmtMs(row.timing.p95Ms) : ''} | ${row.timing ? fmtRate(row.timing.imgPerSec) : ''} | ${row.value ?? ''} | ${mdEsc(row.note ?? row.timing?.note ?? '')} |`);
        }
        L.push('');
      }
      if (e.maxAbsDiff !== undefined) L.push(`Outputs of the variants agree to max |Δ| = ${fmtExp(e.maxAbsDiff)}.`, '');
    }
  }
  L.push('## Kernel profiles', '', 'Per backend and model: the kernels that dominate (tf.profile; share of the summed kernel time), then the costliest kernel × input-shape groups.', '');
  for (const b of r.backends) {
    for (const m of b.models) {
      for (const p of m.profiles) {
        L.push(`**${b.spec.id} · ${m.model} · ${p.what}** — kernels ${fmtMs(p.kernelMs)} of ${fmtMs(p.wallMs)} wall (${p.timer})`, '', '| kernel | calls | time | share |', '|---|---|---|---|');
        for (const k of p.kernels.slice(0, 10)) L.push(`| ${k.name} | ${k.calls} | ${fmtMs(k.totalMs)} | ${(100 * k.share).toFixed(1)}% |`);
        for (const k of p.scopes ?? []) {
          L.push(`| (scope ${k.name}: wraps kernels above) | ${k.calls} | ${fmtMs(k.totalMs)} | (${(100 * k.share).toFixed(1)}%) |`);
        }
        L.push('', '| kernel × input shapes | calls | time | GFLOP/s | inputs → outputs |', '|---|---|---|---|---|');
        for (const k of p.top.slice(0, 8)) {
          const outs = k.outputShapes.length > 3 ? `${k.outputShapes.length} × ${JSON.stringify(k.outputShapes[0])}` : JSON.stringify(k.outputShapes);
          L.push(`| ${k.name} | ${k.calls} | ${fmtMs(k.ms)} | ${k.gflops !== undefined ? k.gflops.toFixed(1) : ''} | ${JSON.stringify(k.inputShapes)} → ${outs} |`);
        }
        L.push('');
      }
    }
  }
  // The same backend in the same runtime at several thread counts (wasm-1t, wasm-mt): kernel families side by side.
  const byThreads = new Map<string, BackendResult[]>();
  for (const b of r.backends) {
    if (!b.available || b.spec.threads === undefined) continue;
    const key = `${b.spec.runtime} ${b.spec.backend}`;
    byThreads.set(key, [...(byThreads.get(key) ?? []), b]);
  }
  const famLines: string[] = [];
  for (const [key, bs] of byThreads) {
    if (bs.length < 2) continue;
    for (const model of modelsOf(r)) {
      const whats = [...new Set(bs.flatMap((b) => b.models.find((m) => m.model === model)?.profiles.map((p) => p.what) ?? []))];
      for (const what of whats) {
        const profiles = new Map<number, KernelProfile>();
        for (const b of bs) {
          const p = b.models.find((m) => m.model === model)?.profiles.find((x) => x.what === what);
          if (p) profiles.set(b.spec.threads!, p);
        }
        if (profiles.size < 2) continue;
        const f = kernelFamilies(profiles);
        famLines.push(...familiesMarkdown(`${key} · ${model} · ${what}`, f.totalMs, f.rows));
      }
    }
  }
  if (famLines.length) {
    L.push('## Kernel families by thread count', '', 'The profiles above summed per kernel name (`_FusedMatMul` with BatchMatMul), per thread count; speed-up = time at the fewest threads ÷ time at the most.', '', ...famLines);
  }
  L.push('## Environment', '');
  for (const b of r.backends) {
    if (!b.available) continue;
    L.push(`- ${b.spec.id}: ${mdEsc(b.reason)}; ${Object.entries(b.environment).map(([k, v]) => `${k}=${v}`).join(', ')}; wall ${fmtMs(b.wallMs)}`);
  }
  L.push('');
  return L.join('\n');
}
