import { readFileSync, statSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { installNodeWasmThreadShims } from './wasm-threads-node.js';

// emscripten builds the pthread worker's URL once per worker (8 at the start) while the workers started before are
// reading that file: a rewrite in place once gave a worker an empty script (it exited, tfjs waited forever and Node
// quit with status 13). The file must be written once and only ever replaced whole.
describe('Node wasm-thread shims: the worker script file', () => {
  it('is written once for the same script, replaced atomically (a new inode, whole text) for another', async () => {
    const shims = await installNodeWasmThreadShims(2);
    try {
      const url = (text: string) => URL.createObjectURL(new Blob([text], { type: 'application/javascript' }));
      const a = 'self.onmessage = () => {}; // worker A';
      const p1 = url(a);
      const ino1 = statSync(p1).ino;
      const mtime1 = statSync(p1).mtimeMs;
      const p2 = url(a);
      expect(p2).toBe(p1);
      expect(statSync(p2).ino).toBe(ino1);
      expect(statSync(p2).mtimeMs).toBe(mtime1);
      const b = 'self.onmessage = () => {}; // worker B, another build';
      const p3 = url(b);
      expect(p3).toBe(p1);
      expect(statSync(p3).ino).not.toBe(ino1);
      expect(readFileSync(p3, 'utf8').endsWith(b)).toBe(true);
      expect(shims.used).toBe(true);
    } finally {
      shims.restore();
    }
  });
});
