import { describe, expect, it } from 'vitest';
import { convitModelInfo, resolveConfig, type ConvitOverrides } from '@softbias/models-convit';
import { STUDY_DEFAULTS, epochsFor, studyPlan } from '../src/plan.js';

/** What createModel(name, overrides) builds: the registry's arguments, then the overrides. */
const configOf = (name: string, overrides: ConvitOverrides) => resolveConfig(convitModelInfo(name).args, overrides);

describe('study plan', () => {
  const runs = studyPlan();

  it('has the issue’s runs: 5 fractions × 2 models, 4 ablations, 3 mixers, FCMAE + 2 ConvNeXt V2', () => {
    expect(runs.map((r) => r.id)).toEqual([
      'convit-f5', 'deit-f5', 'convit-f10', 'deit-f10', 'convit-f30', 'deit-f30', 'convit-f50', 'deit-f50', 'convit-f100', 'deit-f100',
      'ablate-nogate-f10', 'ablate-noconv-f10', 'ablate-neither-f10', 'ablate-frozen-f10',
      'mixer-window-f10', 'mixer-dwconv-f10', 'mixer-ffpatches-f10',
      'fcmae-pretrain', 'convnext-scratch-f10', 'convnext-fcmae-f10',
    ]);
    expect(new Set(runs.map((r) => r.id)).size).toBe(runs.length);
  });

  it('scales epochs by 1/f, so every fraction sees about the same number of images', () => {
    for (const r of runs.filter((x) => x.group === 'fractions')) {
      expect(r.epochs).toBe(Math.round(STUDY_DEFAULTS.baseEpochs / r.fraction));
      expect(r.epochs * r.fraction).toBeCloseTo(STUDY_DEFAULTS.baseEpochs, 0);
    }
    expect(epochsFor(4, 0.3)).toBe(13);
    expect(epochsFor(1, 1)).toBe(1);
  });

  it('twins differ only in their mixers; ablations and mixers replace exactly the GPSA layers', () => {
    const convit = configOf('convit_tiny', runs.find((r) => r.id === 'convit-f10')!.overrides);
    const deit = configOf('convit_tiny_deit', runs.find((r) => r.id === 'deit-f10')!.overrides);
    expect(convit.mixers.map((m) => m.kind)).toEqual(['gpsa', 'gpsa', 'gpsa', 'gpsa', 'mhsa', 'mhsa']);
    expect(deit.mixers.map((m) => m.kind)).toEqual(Array(6).fill('mhsa'));
    const { mixers: _a, localUpToLayer: _b, ...restC } = convit;
    const { mixers: _c, localUpToLayer: _d, ...restD } = deit;
    expect(restC).toEqual(restD);
    const kinds = (id: string) => configOf('convit_tiny', runs.find((r) => r.id === id)!.overrides).mixers;
    expect(kinds('ablate-nogate-f10').slice(0, 4).every((m) => m.kind === 'gpsa' && m.gate === 'frozen')).toBe(true);
    expect(kinds('ablate-noconv-f10')[0]).toMatchObject({ kind: 'gpsa', localInit: false });
    expect(kinds('ablate-neither-f10')[3]).toMatchObject({ kind: 'gpsa', gate: 'frozen', localInit: false });
    expect(kinds('ablate-frozen-f10')[2]).toMatchObject({ kind: 'gpsa', trainable: false });
    expect(kinds('mixer-window-f10').map((m) => m.kind)).toEqual(['window', 'window', 'window', 'window', 'mhsa', 'mhsa']);
    expect(kinds('mixer-dwconv-f10')[0]).toMatchObject({ kind: 'dwconv', kernelSize: 3 });
    expect(kinds('mixer-ffpatches-f10')[1]!.kind).toBe('ff-patches');
    // The plan is JSON (it is stored beside the runs and compared on resume).
    expect(JSON.parse(JSON.stringify(runs)).length).toBe(runs.length);
  });

  it('the fine-tuned ConvNeXt V2 starts from the FCMAE run; groups select runs; bad options throw', () => {
    expect(runs.find((r) => r.id === 'convnext-fcmae-f10')!.initFrom).toBe('fcmae-pretrain');
    expect(studyPlan({ ...STUDY_DEFAULTS, groups: ['mixers'] }).map((r) => r.group)).toEqual(['mixers', 'mixers', 'mixers']);
    expect(() => studyPlan({ ...STUDY_DEFAULTS, fractions: [0] })).toThrow(/fractions must be in \(0, 1\]/);
    expect(() => studyPlan({ ...STUDY_DEFAULTS, imgSize: 28 })).toThrow(/multiple of 16/);
    expect(() => studyPlan({ ...STUDY_DEFAULTS, convnextImgSize: 48 })).toThrow(/multiple of 32/);
    expect(() => studyPlan({ ...STUDY_DEFAULTS, baseEpochs: 0.5 })).toThrow(/baseEpochs/);
  });
});
