/** The study's outputs: a Markdown table file and one self-contained HTML page with inline SVG charts. */
import { color, escapeHtml, htmlPage, lineChart, table } from '@softbias/experiments';
import type { RunResult } from './runs.js';
import type { StudyOptions, StudyRun } from './plan.js';

export interface StudySummary {
  options: StudyOptions;
  backend: string;
  data: string;
  runs: StudyRun[];
  results: Record<string, RunResult>;
  /** Seconds summed over the runs (over every session that worked on them; runs overlap two at a time). */
  seconds: number;
  /** Wall-clock seconds of the sessions that ran the study, and how many there were (absent for old folders). */
  wallSeconds?: number;
  sessions?: number;
}

/** "52.3 min wall-clock over 2 sessions; 95.1 min summed over the runs" */
function timing(s: StudySummary): string {
  const wall = s.wallSeconds !== undefined ? `${(s.wallSeconds / 60).toFixed(1)} min wall-clock${s.sessions && s.sessions > 1 ? ` over ${s.sessions} sessions` : ''}; ` : '';
  return `${wall}${(s.seconds / 60).toFixed(1)} min summed over the runs`;
}

const pct = (v: number | undefined) => (v === undefined || Number.isNaN(v) ? '—' : `${(100 * v).toFixed(1)}%`);
const pts = (a: number | undefined, b: number | undefined) =>
  a === undefined || b === undefined || Number.isNaN(a) || Number.isNaN(b) ? '—' : `${(100 * (a - b) >= 0 ? '+' : '') + (100 * (a - b)).toFixed(1)}`;
const secs = (r: RunResult | undefined) => (r ? `${Math.round(r.seconds)} s` : '—');

/** Rows of each table, shared by the Markdown and the HTML output. */
export function studyTables(s: StudySummary): { title: string; head: string[]; rows: string[][] }[] {
  const R = s.results;
  const fa = Math.round(s.options.ablationFraction * 100);
  const tables: { title: string; head: string[]; rows: string[][] }[] = [];
  const fr = s.runs.filter((r) => r.group === 'fractions' && r.model === 'convit_tiny');
  if (fr.length) {
    tables.push({
      title: 'Sample efficiency: ConViT vs its DeiT twin (epochs × 1/f)',
      head: ['fraction f', 'train images', 'epochs', 'ConViT top-1', 'DeiT twin top-1', 'gap (points)', 'time (ConViT / DeiT)'],
      rows: fr.map((run) => {
        const c = R[run.id];
        const d = R[run.id.replace('convit-', 'deit-')];
        return [String(run.fraction), String(c?.trainSamples ?? d?.trainSamples ?? '—'), String(run.epochs), pct(c?.finalTop1), pct(d?.finalTop1), pts(c?.finalTop1, d?.finalTop1), `${secs(c)} / ${secs(d)}`];
      }),
    });
  }
  const ref = [
    { id: `convit-f${fa}`, label: 'ConViT (GPSA, learned gate, conv. init)' },
    { id: `deit-f${fa}`, label: 'DeiT twin (plain self-attention)' },
  ];
  for (const group of ['ablations', 'mixers'] as const) {
    const rs = s.runs.filter((r) => r.group === group);
    if (!rs.length) continue;
    const base = R[`convit-f${fa}`]?.finalTop1;
    tables.push({
      title:
        group === 'ablations'
          ? `GPSA ablations at f = ${s.options.ablationFraction} (layers 0-${s.options.localUpToLayer - 1})`
          : `Token mixers in layers 0-${s.options.localUpToLayer - 1} at f = ${s.options.ablationFraction}`,
      head: ['model', 'top-1', 'vs ConViT (points)', 'parameters', 'time'],
      rows: [...ref.map((x) => ({ ...x, r: R[x.id] })), ...rs.map((x) => ({ id: x.id, label: x.label, r: R[x.id] }))].map(({ label, r }) => [
        label,
        pct(r?.finalTop1),
        pts(r?.finalTop1, base),
        r ? r.parameters.toLocaleString('en') : '—',
        secs(r),
      ]),
    });
  }
  const cn = s.runs.filter((r) => r.group === 'convnext');
  if (cn.length) {
    tables.push({
      title: `ConvNeXt V2 micro at f = ${s.options.ablationFraction}: FCMAE pre-trained vs from scratch`,
      head: ['run', 'images', 'epochs', 'result', 'parameters', 'time'],
      rows: cn.map((run) => {
        const r = R[run.id];
        const result =
          run.kind === 'fcmae-pretrain'
            ? r?.losses?.length
              ? `masked-patch loss ${r.losses[0]!.toFixed(3)} → ${r.losses.at(-1)!.toFixed(3)}`
              : '—'
            : `top-1 ${pct(r?.finalTop1)}`;
        return [run.label, String(r?.trainSamples ?? '—'), String(run.epochs), result, r ? r.parameters.toLocaleString('en') : '—', secs(r)];
      }),
    });
  }
  return tables;
}

export function markdown(s: StudySummary): string {
  const lines = [`# softbias study results`, '', `Backend: ${s.backend}. Data: ${s.data}. Time: ${timing(s)}.`, ''];
  for (const t of studyTables(s)) {
    lines.push(`## ${t.title}`, '', `| ${t.head.join(' | ')} |`, `| ${t.head.map(() => '---').join(' | ')} |`);
    for (const r of t.rows) lines.push(`| ${r.join(' | ')} |`);
    lines.push('');
  }
  return lines.join('\n');
}

export function html(s: StudySummary): string {
  const R = s.results;
  const parts: string[] = [];
  const fr = s.runs.filter((r) => r.group === 'fractions' && r.model === 'convit_tiny');
  const fractions = fr.map((r) => r.fraction);
  if (fractions.length) {
    parts.push(
      lineChart({
        title: 'Final test top-1 against the fraction of training data (epochs × 1/f)',
        xLabel: 'fraction f of each class',
        yLabel: 'top-1 (%)',
        x: fractions,
        series: [
          { name: 'ConViT', values: fr.map((r) => (R[r.id] ? 100 * R[r.id]!.finalTop1 : null)), color: color(0) },
          { name: 'DeiT twin', values: fr.map((r) => (R[r.id.replace('convit-', 'deit-')] ? 100 * R[r.id.replace('convit-', 'deit-')]!.finalTop1 : null)), color: color(1) },
        ],
      }),
    );
  }
  const fa = Math.round(s.options.ablationFraction * 100);
  const curves = s.runs.filter((r) => r.kind !== 'fcmae-pretrain' && r.fraction === s.options.ablationFraction && R[r.id]);
  if (curves.length) {
    // x: the epochs at which any of these runs was evaluated (lines join the evaluations, no gaps between them).
    const evaluated = [...new Set(curves.flatMap((run) => R[run.id]!.history.filter((h) => !Number.isNaN(h.top1)).map((h) => h.epoch)))].sort((a, b) => a - b);
    parts.push(
      lineChart({
        title: `Test top-1 during training at f = ${s.options.ablationFraction} (evaluated every ${curves[0]!.evalEvery} epochs)`,
        xLabel: 'epoch',
        yLabel: 'top-1 (%)',
        x: evaluated,
        series: curves.map((run, i) => ({
          name: run.id,
          values: evaluated.map((epoch) => {
            const p = R[run.id]!.history.find((q) => q.epoch === epoch);
            return p && !Number.isNaN(p.top1) ? 100 * p.top1 : null;
          }),
          color: color(i),
          dashed: run.kind === 'convnext',
        })),
      }),
    );
  }
  const convit = R[`convit-f${fa}`];
  if (convit) {
    const pts = convit.history.filter((h) => h.gates.length);
    const layers = [...Array(pts[0]?.gates.length ?? 0).keys()].filter((l) => pts.some((h) => h.gates[l] !== null));
    parts.push(
      lineChart({
        title: `ConViT at f = ${s.options.ablationFraction}: gate σ(λ) per GPSA layer (mean over heads; 1 = positional)`,
        xLabel: 'epoch (0 = initialisation)',
        yLabel: 'gate',
        x: pts.map((h) => h.epoch),
        yMin: 0,
        yMax: 1,
        series: layers.map((l, i) => ({ name: `layer ${l}`, values: pts.map((h) => h.gates[l] ?? null), color: color(i) })),
      }),
    );
  }
  for (const id of [`convit-f${fa}`, `deit-f${fa}`]) {
    const r = R[id];
    if (!r) continue;
    const pts = r.history.filter((h) => h.nonlocality.length);
    parts.push(
      lineChart({
        title: `${r.label} at f = ${s.options.ablationFraction}: nonlocality per layer`,
        xLabel: 'epoch (0 = initialisation)',
        yLabel: 'mean attention distance (patches)',
        x: pts.map((h) => h.epoch),
        yMin: 0,
        series: [...Array(pts[0]?.nonlocality.length ?? 0).keys()].map((l) => ({ name: `layer ${l}`, values: pts.map((h) => h.nonlocality[l] ?? null), color: color(l) })),
      }),
    );
  }
  const pre = R['fcmae-pretrain'];
  if (pre?.losses?.length) {
    parts.push(
      lineChart({
        title: 'FCMAE pre-training: masked-patch loss (normalised pixels)',
        xLabel: 'epoch',
        yLabel: 'loss',
        x: pre.losses.map((_, i) => i + 1),
        series: [{ name: 'loss', values: pre.losses, color: color(0) }],
      }),
    );
  }
  const tables = studyTables(s)
    .map((t) => `<h2>${escapeHtml(t.title)}</h2>${table(t.head, t.rows)}`)
    .join('\n');
  const o = s.options;
  const body = `<h1>softbias study: ConViT's sample efficiency at small scale</h1>
<p class="note">Backend ${escapeHtml(s.backend)}; data ${escapeHtml(s.data)}; ${escapeHtml(timing(s))}.
ConViT trunk: ${o.imgSize}×${o.imgSize} input (Fashion-MNIST resized), patch 4, ${o.embedDim} wide, depth ${o.depth}, ${o.numHeads} heads,
MLP ratio 2; GPSA in layers 0-${o.localUpToLayer - 1} (or the ablated / replacing mixer), plain self-attention and the class token
above. The DeiT twin has plain self-attention everywhere. ${o.baseEpochs} epochs at f = 1, round(${o.baseEpochs}/f) at fraction f;
AdamW (weight decay 0.05), cosine with ~10% warm-up, label smoothing 0.1, random resized crop (area 0.5-1) + flip, batch 64 (${o.dropLast ? "each epoch's incomplete last batch dropped" : "incomplete last batches kept"}), seed 0.
ConvNeXt V2 micro: depths [1, 1, 3, 1], dims [24, 48, 96, 192], ${o.convnextImgSize}×${o.convnextImgSize} input; FCMAE pre-training
(mask ratio 0.6, 32-pixel patches, sparse encoder, std-0.02 init like the from-scratch model, ${o.pretrainEpochs} epochs) on all training images without labels, then the same fine-tuning as from scratch.</p>
${tables}
<div class="charts">${parts.join('')}</div>`;
  return htmlPage('softbias study', body);
}
