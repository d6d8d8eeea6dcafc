/**
 * A backward pass that frees memory as it goes, installed into the app's tfjs engine (tf.grads, tf.variableGrads,
 * optimizer.minimize, customGrad all go through `engine.gradients`).
 *
 * tfjs-core 4.22's `engine.gradients` keeps, until the whole backward pass has finished, every tensor the forward
 * saved for it (each tape node's `saved`) and every intermediate gradient (the gradient of each intermediate
 * tensor stays in its map). A ConViT-Ti training step at batch 8 held 1.2 GiB after the forward and peaked at
 * 3.4 GiB at the very end of the backward. Here, the same walk over the same filtered tape, in the same order
 * with the same arithmetic, disposes a node's saved tensors and the gradients of its outputs as soon as that
 * node's input gradients are computed: the peak is about what the forward saved. The results are identical
 * (tested against the stock implementation); higher-order gradients (a gradient taken inside a gradient) use
 * tfjs' own implementation unchanged.
 *
 * Relies on tfjs-core 4.22 internals (`state.activeTape`, `startTape`/`endTape`, tape node fields); checked at
 * install time, and `useLeanGradients(false)` restores tfjs' own method.
 */
import * as tf from '@tensorflow/tfjs-core';

interface TapeNode {
  id: number;
  kernelName: string;
  outputs: tf.Tensor[];
  inputs: Record<string, tf.Tensor>;
  gradient?: (dys: (tf.Tensor | null)[]) => Record<string, () => tf.Tensor>;
  saved?: tf.Tensor[];
}

interface EngineInternals {
  state: { activeTape: TapeNode[] | null; gradientDepth: number };
  startTape(): void;
  endTape(): void;
  scopedRun<T>(start: () => void, end: () => void, f: () => T): T;
  tidy<T extends tf.TensorContainer>(name: string | (() => T), f?: () => T): T;
  gradients(f: () => tf.Tensor, xs: tf.Tensor[], dy?: tf.Tensor, allowNoGradients?: boolean): { value: tf.Tensor; grads: tf.Tensor[] };
}

/** The nodes on a path from some x to y, inputs pruned to those that depend on an x (tfjs' own rule). */
function filterTape(tape: TapeNode[], xs: tf.Tensor[], y: tf.Tensor): TapeNode[] {
  const fromX = new Set<number>(xs.map((x) => x.id));
  const nodesFromX = new Set<number>();
  for (const node of tape) {
    for (const name in node.inputs) {
      if (fromX.has(node.inputs[name]!.id)) {
        for (const o of node.outputs) fromX.add(o.id);
        nodesFromX.add(node.id);
        break;
      }
    }
  }
  const toY = new Set<number>([y.id]);
  const nodesToY = new Set<number>();
  for (let i = tape.length - 1; i >= 0; i--) {
    const node = tape[i]!;
    if (node.outputs.some((o) => toY.has(o.id))) {
      for (const name in node.inputs) {
        toY.add(node.inputs[name]!.id);
        nodesToY.add(node.id);
      }
    }
  }
  const out: TapeNode[] = [];
  for (const node of tape) {
    if (!nodesFromX.has(node.id) || !nodesToY.has(node.id)) continue;
    const inputs: Record<string, tf.Tensor> = {};
    for (const name in node.inputs) if (fromX.has(node.inputs[name]!.id)) inputs[name] = node.inputs[name]!;
    out.push({ ...node, inputs, outputs: node.outputs });
  }
  return out;
}

let stock: EngineInternals['gradients'] | null = null;

function leanGradients(
  this: EngineInternals,
  f: () => tf.Tensor,
  xs: tf.Tensor[],
  dy?: tf.Tensor,
  allowNoGradients = false,
): { value: tf.Tensor; grads: tf.Tensor[] } {
  // Inside another gradient (higher order), tfjs' own walk keeps what the outer one needs.
  if (this.state.gradientDepth > 0) return stock!.call(this, f, xs, dy, allowNoGradients);
  tf.util.assert(xs.length > 0, () => 'gradients() received an empty list of xs.');
  if (dy != null && dy.dtype !== 'float32') throw new Error(`dy must have 'float32' dtype, but has '${dy.dtype}'`);
  const y = this.scopedRun(
    () => this.startTape(),
    () => this.endTape(),
    () => this.tidy('forward', f),
  );
  tf.util.assert(y instanceof tf.Tensor, () => 'The result y returned by f() must be a tensor.');
  const tape = this.state.activeTape!;
  const filtered = filterTape(tape, xs, y);
  if (!allowNoGradients && filtered.length === 0 && xs.length > 0) {
    throw new Error(
      'Cannot compute gradient of y=f(x) with respect to x. Make sure that the f you passed encloses all ' +
        'operations that lead from x to y.',
    );
  }
  try {
    return this.tidy('backward', () => {
      const acc = new Map<number, tf.Tensor>();
      acc.set(y.id, dy ?? tf.ones(y.shape));
      const keepIds = new Set<number>(xs.map((x) => x.id));
      for (let i = filtered.length - 1; i >= 0; i--) {
        const node = filtered[i]!;
        const dys = node.outputs.map((o) => acc.get(o.id) ?? null);
        if (node.gradient == null) throw new Error(`Cannot compute gradient: gradient function not found for ${node.kernelName}.`);
        const inputGradients = node.gradient(dys);
        const produced = new Set<tf.Tensor>();
        for (const name in node.inputs) {
          if (!(name in inputGradients)) {
            throw new Error(`Cannot backprop through input ${name}. Available gradients found: ${Object.keys(inputGradients)}.`);
          }
          const dx = this.tidy(() => inputGradients[name]!());
          if (dx.dtype !== 'float32') {
            throw new Error(
              `Error in gradient for op ${node.kernelName}. The gradient of input ${name} must have 'float32' dtype, but has '${dx.dtype}'`,
            );
          }
          const x = node.inputs[name]!;
          if (!tf.util.arraysEqual(dx.shape, x.shape)) {
            throw new Error(
              `Error in gradient for op ${node.kernelName}. The gradient of input '${name}' has shape '${dx.shape}', which does not match the shape of the input '${x.shape}'`,
            );
          }
          const cur = acc.get(x.id);
          if (cur == null) {
            acc.set(x.id, dx);
            produced.add(dx);
          } else {
            const sum = tf.add(cur, dx);
            acc.set(x.id, sum);
            produced.add(sum);
            if (cur !== dx) cur.dispose();
            if (!produced.has(dx) && ![...acc.values()].includes(dx)) dx.dispose();
          }
        }
        // This node is done: what it saved and the gradients of its outputs are no longer needed.
        for (const t of node.saved ?? []) t.dispose();
        for (const o of node.outputs) {
          const g = acc.get(o.id);
          if (!g || keepIds.has(o.id) || produced.has(g)) continue;
          acc.delete(o.id);
          if (g !== dy) g.dispose();
        }
      }
      const grads = xs.map((x) => acc.get(x.id)) as tf.Tensor[];
      return { value: y, grads } as unknown as tf.TensorContainer;
    }) as unknown as { value: tf.Tensor; grads: tf.Tensor[] };
  } finally {
    if (this.state.gradientDepth === 0) {
      for (const node of tape) for (const t of node.saved ?? []) t.dispose();
      this.state.activeTape = null;
    }
  }
}

/** Install (true, the default on import) or remove (false) the lean backward pass. Returns whether it is on. */
export function useLeanGradients(on = true): boolean {
  const engine = tf.engine() as unknown as EngineInternals;
  const ok =
    typeof engine.startTape === 'function' && typeof engine.endTape === 'function' && typeof engine.scopedRun === 'function' && 'state' in engine;
  if (!ok) return false;
  const current = engine.gradients as EngineInternals['gradients'] & { softbiasLean?: boolean };
  if (!current.softbiasLean) stock = current;
  if (on) {
    const lean = leanGradients as typeof leanGradients & { softbiasLean?: boolean };
    lean.softbiasLean = true;
    engine.gradients = lean as unknown as EngineInternals['gradients'];
  } else if (stock) {
    engine.gradients = stock;
  }
  return on;
}

/** Whether the engine's gradients are softbias' lean backward pass. */
export function leanGradientsActive(): boolean {
  return (tf.engine() as unknown as { gradients: { softbiasLean?: boolean } }).gradients.softbiasLean === true;
}
