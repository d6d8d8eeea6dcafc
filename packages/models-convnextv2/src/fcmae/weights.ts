/**
 * FCMAE constructors and file I/O: `createFcmae`, and `loadFcmae`, which rebuilds a saved FCMAE after checking
 * the file's config (bounds) and tensors (names, shapes, dtypes) against it, before allocating anything.
 */
import {
  type WeightsFile,
  type WeightsInput,
  WeightsError,
  checkWeights,
  readWeights,
} from '@softbias/tensor-ops/models';
import { parameterShapes } from '../config.js';
import { type CreateFcmaeOptions, type FcmaeConfig, resolveFcmaeConfig } from './config.js';
import { FCMAE_FAMILY, Fcmae } from './model.js';

/** Build an FCMAE (official `FCMAE(...)` arguments, camelCase; `model` picks a registered encoder size). */
export function createFcmae(opts: CreateFcmaeOptions = {}): Fcmae {
  const cfg = resolveFcmaeConfig(opts);
  return new Fcmae(cfg, { seed: opts.seed, init: opts.init, encoder: opts.encoder, grnStats: opts.grnStats });
}

/** Parameter tensors of an FCMAE config, as [timm-style key, PyTorch shape], in state-dict order, without allocating. */
export function fcmaeParameterShapes(cfg: FcmaeConfig): [string, number[]][] {
  const D = cfg.decoderEmbedDim;
  const out: [string, number[]][] = parameterShapes({ ...cfg, numClasses: 0, convMlp: false })
    .filter(([k]) => !k.startsWith('head.'))
    .map(([k, s]) => [`encoder.${k}`, s]);
  out.push(['proj.weight', [D, cfg.dims[3], 1, 1]], ['proj.bias', [D]], ['mask_token', [1, D, 1, 1]]);
  for (let j = 0; j < cfg.decoderDepth; j++) {
    const b = `decoder.${j}`;
    out.push(
      [`${b}.conv_dw.weight`, [D, 1, 7, 7]],
      [`${b}.conv_dw.bias`, [D]],
      [`${b}.norm.weight`, [D]],
      [`${b}.norm.bias`, [D]],
      [`${b}.mlp.fc1.weight`, [4 * D, D]],
      [`${b}.mlp.fc1.bias`, [4 * D]],
      [`${b}.mlp.grn.weight`, [4 * D]],
      [`${b}.mlp.grn.bias`, [4 * D]],
      [`${b}.mlp.fc2.weight`, [D, 4 * D]],
      [`${b}.mlp.fc2.bias`, [D]],
    );
  }
  const P = cfg.patchSize ** 2 * cfg.inChans;
  out.push(['pred.weight', [P, D, 1, 1]], ['pred.bias', [P]]);
  return out;
}

const squeeze = (s: readonly number[]) => s.filter((d) => d !== 1).join(',');

/** The FCMAE config a file stores (written by `saveWeights`), checked; throws naming what the file holds otherwise. */
export function fcmaeConfigFromWeights(w: WeightsFile): FcmaeConfig {
  const c = w.config;
  if (!c) throw new WeightsError(`loadFcmae: ${w.label} has no __metadata__.config; build the model with createFcmae and call loadWeights`);
  if (w.family !== FCMAE_FAMILY) throw new WeightsError(`loadFcmae: this file holds a '${w.family ?? 'unknown'}' model, not FCMAE`);
  const { architecture: _a, ...rest } = c as Record<string, unknown>;
  return resolveFcmaeConfig(rest as CreateFcmaeOptions);
}

/** Rebuild an FCMAE saved by `saveWeights` (its `__metadata__.config`) and load it strictly. */
export async function loadFcmae(
  source: WeightsInput,
  opts: { seed?: number; allowNonFinite?: boolean; allowIntegerCast?: boolean } = {},
): Promise<Fcmae> {
  const w = await readWeights(source, opts);
  const cfg = fcmaeConfigFromWeights(w);
  checkWeights(`FCMAE (depths [${cfg.depths}], dims [${cfg.dims}], decoder ${cfg.decoderDepth}×${cfg.decoderEmbedDim})`, w, fcmaeParameterShapes(cfg), {
    equivalent: (_k, want, got) => squeeze(want) === squeeze(got),
    ...(opts.allowIntegerCast !== undefined ? { allowIntegerCast: opts.allowIntegerCast } : {}),
  });
  const sd = w.stateDict(opts);
  const model = createFcmae({ ...cfg, ...(opts.seed !== undefined ? { seed: opts.seed } : {}) });
  try {
    model.loadStateDict(sd, { allowNonFinite: opts.allowNonFinite ?? false });
  } catch (e) {
    model.dispose();
    throw e;
  }
  return model;
}
