import type { BackendInfo } from '@softbias/tensor-ops';
export type TestBackend = 'cpu' | 'wasm' | 'webgpu';
export const backendState: { ready: boolean; unavailable?: string; info?: BackendInfo } = { ready: false };
export const currentBackend = (process.env.SOFTBIAS_BACKEND ?? 'cpu') as TestBackend;
