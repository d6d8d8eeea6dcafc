/** Self-contained HTML reports with inline SVG line charts (no scripts, no external assets). */

export interface Series {
  name: string;
  /** One value per x position; null leaves a gap. */
  values: readonly (number | null)[];
  color: string;
  dashed?: boolean;
}

export interface ChartOptions {
  title: string;
  xLabel: string;
  yLabel: string;
  /** x values (e.g. epochs 1..E). */
  x: readonly number[];
  series: readonly Series[];
  yMin?: number;
  yMax?: number;
  width?: number;
  height?: number;
}

export function escapeHtml(s: string): string {
  return s.replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c]!);
}

function niceTicks(lo: number, hi: number, count = 5): number[] {
  if (!(hi > lo)) return [lo];
  const raw = (hi - lo) / count;
  const mag = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 2.5, 5, 10].map((m) => m * mag).find((s) => s >= raw) ?? raw;
  const out: number[] = [];
  for (let v = Math.ceil(lo / step) * step; v <= hi + step * 1e-9; v += step) out.push(Number(v.toPrecision(12)));
  return out;
}

/** An SVG line chart. */
export function lineChart(o: ChartOptions): string {
  const W = o.width ?? 560;
  const H = o.height ?? 300;
  const m = { l: 56, r: 150, t: 28, b: 42 };
  const pw = W - m.l - m.r;
  const ph = H - m.t - m.b;
  const all = o.series.flatMap((s) => s.values.filter((v): v is number => v !== null && Number.isFinite(v)));
  let yMin = o.yMin ?? Math.min(...all);
  let yMax = o.yMax ?? Math.max(...all);
  if (!Number.isFinite(yMin) || !Number.isFinite(yMax)) [yMin, yMax] = [0, 1];
  if (yMax - yMin < 1e-12) [yMin, yMax] = [yMin - 0.5, yMax + 0.5];
  const xMin = Math.min(...o.x);
  const xMax = Math.max(...o.x);
  const sx = (x: number) => m.l + (xMax === xMin ? pw / 2 : ((x - xMin) / (xMax - xMin)) * pw);
  const sy = (y: number) => m.t + ph - ((y - yMin) / (yMax - yMin)) * ph;
  const parts: string[] = [];
  parts.push(`<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 ${W} ${H}" width="${W}" height="${H}" role="img" aria-label="${escapeHtml(o.title)}">`);
  parts.push(`<text x="${m.l}" y="16" font-size="13" font-weight="bold">${escapeHtml(o.title)}</text>`);
  for (const t of niceTicks(yMin, yMax)) {
    parts.push(`<line x1="${m.l}" x2="${m.l + pw}" y1="${sy(t)}" y2="${sy(t)}" stroke="#e3e3e3"/>`);
    parts.push(`<text x="${m.l - 6}" y="${sy(t) + 4}" font-size="10" text-anchor="end">${t}</text>`);
  }
  for (const t of niceTicks(xMin, xMax, Math.min(10, o.x.length))) {
    parts.push(`<text x="${sx(t)}" y="${m.t + ph + 14}" font-size="10" text-anchor="middle">${t}</text>`);
  }
  parts.push(`<rect x="${m.l}" y="${m.t}" width="${pw}" height="${ph}" fill="none" stroke="#999"/>`);
  parts.push(`<text x="${m.l + pw / 2}" y="${H - 6}" font-size="11" text-anchor="middle">${escapeHtml(o.xLabel)}</text>`);
  parts.push(`<text transform="translate(12 ${m.t + ph / 2}) rotate(-90)" font-size="11" text-anchor="middle">${escapeHtml(o.yLabel)}</text>`);
  o.series.forEach((s, i) => {
    let d = '';
    let pen = false;
    s.values.forEach((v, j) => {
      if (v === null || !Number.isFinite(v)) {
        pen = false;
        return;
      }
      d += `${pen ? 'L' : 'M'}${sx(o.x[j]!).toFixed(1)},${sy(v).toFixed(1)}`;
      pen = true;
    });
    const dash = s.dashed ? ' stroke-dasharray="5 3"' : '';
    parts.push(`<path d="${d}" fill="none" stroke="${s.color}" stroke-width="2"${dash}/>`);
    s.values.forEach((v, j) => {
      if (v !== null && Number.isFinite(v)) parts.push(`<circle cx="${sx(o.x[j]!).toFixed(1)}" cy="${sy(v).toFixed(1)}" r="2.2" fill="${s.color}"/>`);
    });
    const ly = m.t + 10 + i * 15;
    parts.push(`<line x1="${m.l + pw + 10}" x2="${m.l + pw + 30}" y1="${ly}" y2="${ly}" stroke="${s.color}" stroke-width="2"${dash}/>`);
    parts.push(`<text x="${m.l + pw + 34}" y="${ly + 4}" font-size="10">${escapeHtml(s.name)}</text>`);
  });
  parts.push('</svg>');
  return parts.join('');
}

/** A categorical colour for series i (colour-blind-friendly Tableau 10). */
export function color(i: number): string {
  const c = ['#4e79a7', '#f28e2b', '#e15759', '#76b7b2', '#59a14f', '#edc948', '#b07aa1', '#ff9da7', '#9c755f', '#bab0ac'];
  return c[i % c.length]!;
}

export function htmlPage(title: string, body: string): string {
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>${escapeHtml(title)}</title>
<style>body{font-family:system-ui,sans-serif;max-width:1200px;margin:24px auto;padding:0 16px;color:#222}
table{border-collapse:collapse;margin:12px 0}td,th{border:1px solid #ccc;padding:4px 10px;text-align:right}
th{background:#f4f4f4}.charts{display:flex;flex-wrap:wrap;gap:18px}.note{color:#555;font-size:13px}</style>
</head><body>
${body}
</body></html>
`;
}

export function table(headers: readonly string[], rows: readonly (readonly (string | number)[])[]): string {
  const th = headers.map((h) => `<th>${escapeHtml(h)}</th>`).join('');
  const tr = rows.map((r) => `<tr>${r.map((c) => `<td>${escapeHtml(String(c))}</td>`).join('')}</tr>`).join('\n');
  return `<table><thead><tr>${th}</tr></thead><tbody>\n${tr}\n</tbody></table>`;
}
