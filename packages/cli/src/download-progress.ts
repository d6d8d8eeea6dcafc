/** The CLI's download progress for hub files (`onProgress` of `fromPretrained` / `hubDownload`). */
import type { HubProgress } from '@softbias/tensor-ops/models';

const mb = (n: number) => `${(n / 1e6).toFixed(1)} MB`;

/**
 * `bar`: one line on stderr redrawn in place (`model.safetensors [#####·····] 52% 7.7 / 14.8 MB`), ended
 * with a newline when the file is complete; `lines`: a line at every 25%; `none`: nothing.
 */
export function downloadProgress(mode: 'bar' | 'lines' | 'none', write: (s: string) => void = (s) => void process.stderr.write(s)): (p: HubProgress) => void {
  if (mode === 'none') return () => {};
  const reported = new Map<string, number>();
  return ({ loaded, total, file }) => {
    const done = total !== undefined && loaded >= total;
    if (mode === 'lines') {
      const step = total ? Math.floor((4 * loaded) / total) : 0;
      if (reported.get(file) === step && !done) return;
      if (done && reported.get(file) === -1) return;
      reported.set(file, done ? -1 : step);
      write(`download ${file}: ${mb(loaded)}${total ? ` / ${mb(total)} (${Math.floor((100 * loaded) / total)}%)` : ''}\n`);
      return;
    }
    const width = 24;
    const filled = total ? Math.min(width, Math.round((width * loaded) / total)) : 0;
    const bar = total ? `[${'#'.repeat(filled)}${'·'.repeat(width - filled)}] ${Math.floor((100 * loaded) / total)}% ` : '';
    write(`\r${file} ${bar}${total ? `${(loaded / 1e6).toFixed(1)} / ${mb(total)}` : mb(loaded)}${done ? '\n' : ''}`);
  };
}
