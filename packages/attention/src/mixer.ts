/**
 * The token-mixer interface shared by every mixer (MHSA, GPSA, window attention, depth-wise convolutions,
 * feed-forward over patches), so one trunk can swap them per block.
 */
import type * as tf from '@tensorflow/tfjs-core';
import { Module } from '@softbias/tensor-ops';

export interface MixerInput {
  /** [B, N, C]: `numPrefixTokens` prefix tokens (class token) first, then the rows·cols patch tokens, row-major. */
  tokens: tf.Tensor;
  /** Patch grid [rows, cols]; rows·cols = N − numPrefixTokens. */
  grid: readonly [number, number];
  /** Tokens before the patch grid (0 or 1 for the class token). Grid-based mixers pass them through unchanged. */
  numPrefixTokens: number;
}

export abstract class TokenMixer extends Module {
  /** 'mhsa' | 'gpsa' | 'window' | 'dwconv' | 'ff-patches' | … */
  abstract readonly kind: string;
  /** [B, N, C] → [B, N, C]. Allocates intermediates: call inside `tf.tidy` (models do, once per block). */
  abstract forward(input: MixerInput): tf.Tensor;
}

/** Validate a mixer input against the mixer's width; throws naming the expected shape. */
export function checkMixerInput(kind: string, input: MixerInput, dim: number): void {
  const { tokens, grid, numPrefixTokens } = input;
  if (!grid || grid.length !== 2 || !grid.every((g) => Number.isInteger(g) && g >= 1)) {
    throw new Error(`${kind}: grid must be [rows, cols] (positive integers), got [${grid}]`);
  }
  if (!Number.isInteger(numPrefixTokens) || numPrefixTokens < 0) {
    throw new Error(`${kind}: numPrefixTokens must be a non-negative integer, got ${numPrefixTokens}`);
  }
  const n = grid[0] * grid[1] + numPrefixTokens;
  if (tokens.rank !== 3) {
    throw new Error(`${kind}: expected tokens [B, ${n}, ${dim}] (rank 3), got shape [${tokens.shape}]`);
  }
  if (tokens.shape[1] !== n || tokens.shape[2] !== dim) {
    throw new Error(
      `${kind}: expected tokens [B, ${n}, ${dim}] (grid ${grid[0]}×${grid[1]} + ${numPrefixTokens} prefix), got [${tokens.shape}]`,
    );
  }
}
