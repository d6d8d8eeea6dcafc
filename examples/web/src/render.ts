/** Canvas drawing: the model input with its patch grid, and attention heatmaps. */

/** A dark-to-bright sequential colour map (navy → violet → orange → pale yellow), t in [0, 1]. */
const STOPS: [number, number, number][] = [
  [8, 8, 40],
  [60, 15, 110],
  [140, 30, 120],
  [215, 70, 70],
  [250, 150, 40],
  [252, 240, 160],
];

export function colour(t: number): [number, number, number] {
  const x = Math.min(1, Math.max(0, Number.isFinite(t) ? t : 0)) * (STOPS.length - 1);
  const i = Math.min(STOPS.length - 2, Math.floor(x));
  const f = x - i;
  const a = STOPS[i]!;
  const b = STOPS[i + 1]!;
  return [a[0] + (b[0] - a[0]) * f, a[1] + (b[1] - a[1]) * f, a[2] + (b[2] - a[2]) * f];
}

/** CSS colour for a value in [0, 1]. */
export function cssColour(t: number): string {
  const [r, g, b] = colour(t);
  return `rgb(${r | 0}, ${g | 0}, ${b | 0})`;
}

/**
 * Draw `values` (rows × cols, row-major) as a heatmap filling the canvas, scaled to its own maximum so every
 * head's pattern is visible; `mark` outlines one cell (the query patch).
 */
export function drawHeatmap(canvas: HTMLCanvasElement, values: Float32Array, rows: number, cols: number, mark?: [number, number]): void {
  const ctx = canvas.getContext('2d')!;
  const img = ctx.createImageData(cols, rows);
  let max = 0;
  for (const v of values) max = Math.max(max, v);
  for (let i = 0; i < rows * cols; i++) {
    const [r, g, b] = colour(max > 0 ? values[i]! / max : 0);
    img.data[i * 4] = r;
    img.data[i * 4 + 1] = g;
    img.data[i * 4 + 2] = b;
    img.data[i * 4 + 3] = 255;
  }
  const tmp = document.createElement('canvas');
  tmp.width = cols;
  tmp.height = rows;
  tmp.getContext('2d')!.putImageData(img, 0, 0);
  ctx.imageSmoothingEnabled = false;
  ctx.clearRect(0, 0, canvas.width, canvas.height);
  ctx.drawImage(tmp, 0, 0, canvas.width, canvas.height);
  if (mark) {
    const cw = canvas.width / cols;
    const ch = canvas.height / rows;
    ctx.strokeStyle = '#3cf';
    ctx.lineWidth = Math.max(1, Math.min(cw, ch) / 5);
    ctx.strokeRect(mark[1] * cw + ctx.lineWidth / 2, mark[0] * ch + ctx.lineWidth / 2, cw - ctx.lineWidth, ch - ctx.lineWidth);
  }
}

/** Draw an RGB image in [0, 1] ([H, W, 3]) filling the canvas, with the patch grid and the selected patch. */
export function drawInput(
  canvas: HTMLCanvasElement,
  pixels: { rgb: Float32Array; height: number; width: number },
  grid: [number, number] | null,
  selected: [number, number] | null,
): void {
  const { rgb, height, width } = pixels;
  const ctx = canvas.getContext('2d')!;
  const img = ctx.createImageData(width, height);
  for (let i = 0; i < height * width; i++) {
    img.data[i * 4] = rgb[i * 3]! * 255;
    img.data[i * 4 + 1] = rgb[i * 3 + 1]! * 255;
    img.data[i * 4 + 2] = rgb[i * 3 + 2]! * 255;
    img.data[i * 4 + 3] = 255;
  }
  const tmp = document.createElement('canvas');
  tmp.width = width;
  tmp.height = height;
  tmp.getContext('2d')!.putImageData(img, 0, 0);
  ctx.imageSmoothingEnabled = width < canvas.width / 4 ? false : true;
  ctx.clearRect(0, 0, canvas.width, canvas.height);
  ctx.drawImage(tmp, 0, 0, canvas.width, canvas.height);
  if (!grid) return;
  const [rows, cols] = grid;
  const cw = canvas.width / cols;
  const ch = canvas.height / rows;
  ctx.strokeStyle = 'rgba(255, 255, 255, 0.35)';
  ctx.lineWidth = 1;
  ctx.beginPath();
  for (let c = 1; c < cols; c++) {
    ctx.moveTo(c * cw, 0);
    ctx.lineTo(c * cw, canvas.height);
  }
  for (let r = 1; r < rows; r++) {
    ctx.moveTo(0, r * ch);
    ctx.lineTo(canvas.width, r * ch);
  }
  ctx.stroke();
  if (selected) {
    ctx.strokeStyle = '#3cf';
    ctx.lineWidth = 3;
    ctx.strokeRect(selected[1] * cw + 1.5, selected[0] * ch + 1.5, cw - 3, ch - 3);
  }
}

/** The patch (row, col) under a click on a canvas showing a rows × cols grid. */
export function patchAt(canvas: HTMLCanvasElement, ev: MouseEvent, grid: [number, number]): [number, number] {
  const rect = canvas.getBoundingClientRect();
  const x = (ev.clientX - rect.left) / rect.width;
  const y = (ev.clientY - rect.top) / rect.height;
  return [Math.min(grid[0] - 1, Math.max(0, Math.floor(y * grid[0]))), Math.min(grid[1] - 1, Math.max(0, Math.floor(x * grid[1])))];
}
