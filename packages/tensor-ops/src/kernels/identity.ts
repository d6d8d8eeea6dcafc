/**
 * softbias' `Identity` for tfjs-backend-wasm 4.22: a clone shares the input's heap memory (the backend's
 * reference count, as tfjs-backend-cpu does) instead of copying it. tfjs clones every tensor a kernel saves for
 * its gradient (`saveTensorsForBackwardMode`), so with tfjs' copying kernel a training step copied each saved
 * activation once more: 5–6% of a ConViT-Ti step at batch 8. Tensors are immutable and no kernel (tfjs' or
 * softbias') writes into its inputs, so sharing is safe; the memory is freed when the last holder is disposed.
 * String tensors keep the original kernel.
 */
import * as tf from '@tensorflow/tfjs-core';

interface RefCountingBackend {
  incRef(dataId: tf.DataId): void;
}

let original: tf.KernelFunc | null = null;

function identity(args: { inputs: tf.NamedTensorInfoMap; backend: unknown; attrs?: tf.NamedAttrMap }): tf.TensorInfo {
  const { x } = args.inputs as { x: tf.TensorInfo };
  if (x.dtype === 'string') return original!(args as Parameters<tf.KernelFunc>[0]) as tf.TensorInfo;
  (args.backend as RefCountingBackend).incRef(x.dataId);
  return { dataId: x.dataId, shape: [...x.shape], dtype: x.dtype };
}

/** Replace tfjs-backend-wasm's copying Identity (idempotent). Returns true when this call registered it. */
export function registerWasmIdentity(): boolean {
  const current = tf.getKernel('Identity', 'wasm');
  if (!current || (current.kernelFunc as { softbias?: boolean }).softbias) return false;
  original = current.kernelFunc;
  const kernelFunc = identity as unknown as tf.KernelFunc & { softbias?: boolean };
  kernelFunc.softbias = true;
  tf.unregisterKernel('Identity', 'wasm');
  tf.registerKernel({ ...current, kernelFunc });
  return true;
}
