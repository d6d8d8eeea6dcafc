#!/usr/bin/env node
/**
 * The softbias study (ConViT's sample-efficiency experiment at small scale, with ablations, other token mixers
 * and ConvNeXt V2 + FCMAE), resumable: run it again after an interruption (Ctrl-C, SIGKILL, a reboot) and it
 * skips finished runs and resumes the interrupted one from its last epoch.
 *
 *   npm run study                       # everything, into out/study (two runs at a time on two cores)
 *   npm run study -- --plan             # print the runs and exit
 *   npm run study -- --groups fractions # only some tables
 *   npm run study -- --report           # rewrite the tables and charts from finished runs
 */
import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { join, resolve } from 'node:path';
import { availableParallelism } from 'node:os';
import { parseArgs } from 'node:util';
import { setupBackend, type BackendRequest } from '@softbias/tensor-ops';
import { FASHION_MNIST_MEAN, FASHION_MNIST_STD, loadFashionMnist } from '@softbias/data';
import { STUDY_DEFAULTS, studyPlan, type StudyOptions, type StudyRun } from './plan.js';
import { executeRun, readResult, runDir, type RunResult } from './runs.js';
import { html, markdown, type StudySummary } from './report.js';

const HELP = `softbias study [options]
  --out DIR              output folder (default out/study); holds runs/<id>/ and the report
  --backend NAME         auto | cpu | wasm | webgpu | tensorflow (default auto)
  --threads N            wasm threads (default 1)
  --base-epochs N        epochs at f = 1; round(N / f) at fraction f (default ${STUDY_DEFAULTS.baseEpochs})
  --pretrain-epochs N    FCMAE pre-training epochs (default ${STUDY_DEFAULTS.pretrainEpochs})
  --fractions LIST       comma-separated fractions (default ${STUDY_DEFAULTS.fractions.join(',')})
  --groups LIST          fractions,ablations,mixers,convnext (default all)
  --data SOURCE          embedded (default: the subset shipped with @softbias/data) | auto | full
  --data-dir DIR         Fashion-MNIST IDX files (full set)
  --keep-last            keep each epoch's incomplete last training batch (default: drop it, as timm)
  --progress MODE        per-batch progress: bar | lines | none (default none: a line per evaluation)
  --jobs N               runs at once, each in its own process (default: the number of cores, at most 2)
  --only ID              run only this run (the others must be finished or are skipped)
  --plan                 print the plan and exit
  --report               only rewrite the report from finished runs`;

function parseList<T>(v: string | undefined, f: (s: string) => T): T[] | undefined {
  return v === undefined ? undefined : v.split(',').map((s) => f(s.trim()));
}

function posInt(name: string, v: string | undefined): number | undefined {
  if (v === undefined) return undefined;
  const n = Number(v);
  if (!Number.isInteger(n) || n < 1) throw new Error(`--${name} must be a positive integer, got '${v}'`);
  return n;
}

export async function main(argv = process.argv.slice(2), log: (s: string) => void = (s) => console.log(s)): Promise<StudySummary | undefined> {
  const { values } = parseArgs({
    args: argv,
    options: {
      out: { type: 'string', default: 'out/study' },
      backend: { type: 'string', default: 'auto' },
      threads: { type: 'string' },
      'base-epochs': { type: 'string' },
      'pretrain-epochs': { type: 'string' },
      fractions: { type: 'string' },
      groups: { type: 'string' },
      data: { type: 'string', default: 'embedded' },
      'data-dir': { type: 'string' },
      progress: { type: 'string', default: 'none' },
      jobs: { type: 'string' },
      only: { type: 'string' },
      plan: { type: 'boolean', default: false },
      'keep-last': { type: 'boolean', default: false },
      report: { type: 'boolean', default: false },
      help: { type: 'boolean', short: 'h', default: false },
    },
    strict: true,
  });
  if (values.help) {
    log(HELP);
    return undefined;
  }
  const groups = parseList(values.groups, (g) => {
    if (!['fractions', 'ablations', 'mixers', 'convnext'].includes(g)) throw new Error(`--groups: unknown group '${g}' (fractions, ablations, mixers, convnext)`);
    return g as StudyRun['group'];
  });
  const options: StudyOptions = {
    ...STUDY_DEFAULTS,
    ...(values['base-epochs'] ? { baseEpochs: posInt('base-epochs', values['base-epochs'])! } : {}),
    ...(values['pretrain-epochs'] ? { pretrainEpochs: posInt('pretrain-epochs', values['pretrain-epochs'])! } : {}),
    ...(values.fractions ? { fractions: parseList(values.fractions, Number)! } : {}),
    ...(groups ? { groups } : {}),
    dropLast: !values['keep-last'],
  };
  const runs = studyPlan(options);
  const out = resolve(values.out);
  if (values.plan) {
    for (const r of runs) {
      const done = readResult(out, r.id) ? 'done' : existsSync(join(runDir(out, r.id), 'checkpoint.safetensors')) ? 'partial' : '';
      log(`${r.id.padEnd(22)} ${r.kind.padEnd(15)} f=${String(r.fraction).padEnd(5)} ${String(r.epochs).padStart(3)} epochs  eval every ${r.evalEvery}  ${done}`);
    }
    return undefined;
  }
  if (!['embedded', 'auto', 'full'].includes(values.data)) throw new Error(`--data must be embedded, auto or full, got '${values.data}'`);
  const progress = values.progress as 'bar' | 'lines' | 'none';
  if (!['bar', 'lines', 'none'].includes(progress)) throw new Error(`--progress must be bar, lines or none, got '${progress}'`);

  // A resumed study must be the same study: the settings are stored beside the runs and compared.
  mkdirSync(out, { recursive: true });
  const planPath = join(out, 'plan.json');
  const settings = JSON.stringify({ options: { ...options, groups: undefined }, data: values.data, dataDir: values['data-dir'] ?? null });
  if (existsSync(planPath)) {
    const prev = JSON.parse(readFileSync(planPath, 'utf8')) as { settings: string };
    if (prev.settings !== settings) {
      throw new Error(
        `${out} holds runs of a study with other settings (${planPath}); use another --out, or delete that folder to start over`,
      );
    }
  } else {
    writeFileSync(planPath, JSON.stringify({ settings, runs }, null, 2));
  }

  // The backend the runs used is stored beside them, so a report-only call can name it.
  const backendPath = join(out, 'backend.json');
  const backend: { backend: string; reason: string } = values.report
    ? existsSync(backendPath)
      ? (JSON.parse(readFileSync(backendPath, 'utf8')) as { backend: string; reason: string })
      : { backend: 'unknown', reason: 'not recorded' }
    : await setupBackend(values.backend as BackendRequest, values.threads ? { threads: posInt('threads', values.threads)! } : {});
  if (!values.report) {
    log(`backend: ${backend.backend} (${backend.reason})`);
    if (values.only === undefined) writeFileSync(backendPath, JSON.stringify({ backend: backend.backend, reason: backend.reason }));
  }
  const source = values.data as 'embedded' | 'auto' | 'full';
  const base = { source, ...(values['data-dir'] ? { dir: values['data-dir'] } : {}) } as const;
  const [train, test] = await Promise.all([loadFashionMnist({ ...base, split: 'train' }), loadFashionMnist({ ...base, split: 'test' })]);
  const data = `Fashion-MNIST ${train.source}: ${train.length} train / ${test.length} test images`;
  log(`data: ${data}`);

  const ac = new AbortController();
  const onSignal = () => {
    log('\ninterrupted: saving a checkpoint; run the same command again to resume');
    ac.abort();
  };
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);
  const jobs = posInt('jobs', values.jobs) ?? Math.min(2, availableParallelism());
  const t0 = performance.now();
  // Wall-clock time over every session that worked on this study (each entry is updated as runs finish).
  const sessionsPath = join(out, 'sessions.json');
  const sessions = existsSync(sessionsPath) ? (JSON.parse(readFileSync(sessionsPath, 'utf8')) as { start: string; end: string }[]) : [];
  const working = !values.report && values.only === undefined;
  const session = { start: new Date().toISOString(), end: new Date().toISOString() };
  if (working) sessions.push(session);
  const touch = () => {
    if (!working) return;
    session.end = new Date().toISOString();
    writeFileSync(sessionsPath, JSON.stringify(sessions, null, 2));
  };
  if (jobs > 1 && working) {
    await runInProcesses(runs, out, jobs, argv, log, ac.signal, touch);
  }
  const results: Record<string, RunResult> = {};
  const encoders: Record<string, string> = {};
  try {
    for (const [i, run] of runs.entries()) {
      if (values.only !== undefined && run.id !== values.only) {
        const done = readResult(out, run.id);
        if (done) results[run.id] = done;
        if (done && run.kind === 'fcmae-pretrain') encoders[run.id] = join(runDir(out, run.id), 'encoder.safetensors');
        continue;
      }
      const done = readResult(out, run.id);
      if (done) {
        results[run.id] = done;
      } else if (!values.report) {
        log(`\n[${i + 1}/${runs.length}] ${run.id}: ${run.label}, f = ${run.fraction}, ${run.epochs} epochs`);
        results[run.id] = await executeRun(run, {
          train,
          test,
          mean: FASHION_MNIST_MEAN,
          std: FASHION_MNIST_STD,
          dir: runDir(out, run.id),
          seed: 0,
          batchSize: 64,
          lr: 2e-3,
          progress,
          log,
          signal: ac.signal,
          encoders,
        });
        touch();
      }
      const r = results[run.id];
      if (r) {
        if (run.kind === 'fcmae-pretrain') encoders[run.id] = join(runDir(out, run.id), 'encoder.safetensors');
        else log(`${run.id}: top-1 ${(100 * r.finalTop1).toFixed(1)}% (${Math.round(r.seconds)} s${r.resumes ? `, resumed ${r.resumes}×` : ''})`);
      }
    }
  } finally {
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
  }
  if (values.only !== undefined) {
    if (!runs.some((r) => r.id === values.only)) throw new Error(`--only: no run '${values.only}' in the plan (see --plan)`);
    return undefined;
  }
  touch();
  const summary: StudySummary = {
    options,
    backend: `${backend.backend} (${backend.reason})`,
    data,
    runs,
    results,
    seconds: Object.values(results).reduce((s, r) => s + r.seconds, 0),
    ...(sessions.length
      ? { wallSeconds: sessions.reduce((t, x) => t + (Date.parse(x.end) - Date.parse(x.start)) / 1000, 0), sessions: sessions.length }
      : {}),
  };
  writeFileSync(join(out, 'results.md'), markdown(summary));
  writeFileSync(join(out, 'report.html'), html(summary));
  writeFileSync(join(out, 'results.json'), JSON.stringify(summary, (_k, v) => (typeof v === 'number' && Number.isNaN(v) ? null : v), 2));
  log(`\n${markdown(summary)}`);
  log(`report: ${join(out, 'report.html')}; tables: ${join(out, 'results.md')} (this session: ${((performance.now() - t0) / 60000).toFixed(1)} min)`);
  return summary;
}

/**
 * Runs the unfinished runs `jobs` at a time, each in a child process of this script with `--only <id>`
 * (single-threaded wasm leaves a core idle; two processes use both). A run that needs another's output starts
 * after it. Each child line is prefixed with the run id.
 */
async function runInProcesses(
  runs: StudyRun[],
  out: string,
  jobs: number,
  argv: string[],
  log: (s: string) => void,
  signal: AbortSignal,
  onRunDone: () => void,
): Promise<void> {
  const pending = runs.filter((r) => !readResult(out, r.id));
  // Long chains first: the pre-training before everything, so the run that needs it is not left waiting at the end.
  pending.sort((a, b) => Number(b.kind === 'fcmae-pretrain') - Number(a.kind === 'fcmae-pretrain') || Number(!!a.initFrom) - Number(!!b.initFrom));
  const script = fileURLToPath(import.meta.url);
  const failed: string[] = [];
  const running = new Set<string>();
  log(`${pending.length} run(s) to do, ${jobs} at a time`);
  await new Promise<void>((done) => {
    const next = () => {
      if (signal.aborted && running.size === 0) return done();
      while (!signal.aborted && running.size < jobs) {
        const i = pending.findIndex((r) => !r.initFrom || (readResult(out, r.initFrom) && !running.has(r.initFrom)));
        if (i < 0) break;
        const run = pending.splice(i, 1)[0]!;
        if (run.initFrom && failed.includes(run.initFrom)) {
          failed.push(run.id);
          continue;
        }
        running.add(run.id);
        const child = spawn(process.execPath, [script, ...argv, '--only', run.id, '--jobs', '1'], { stdio: ['ignore', 'pipe', 'pipe'] });
        const prefix = (chunk: Buffer) => {
          for (const line of chunk.toString().split('\n')) if (line.trim() && !/^(backend|data):/.test(line)) log(`[${run.id}] ${line}`);
        };
        child.stdout.on('data', prefix);
        child.stderr.on('data', prefix);
        const onAbort = () => child.kill('SIGTERM');
        signal.addEventListener('abort', onAbort, { once: true });
        child.on('exit', (code) => {
          signal.removeEventListener('abort', onAbort);
          running.delete(run.id);
          if (code !== 0) failed.push(run.id);
          onRunDone();
          next();
        });
      }
      if (running.size === 0 && (pending.length === 0 || signal.aborted || pending.every((r) => r.initFrom && !readResult(out, r.initFrom)))) {
        for (const r of pending) failed.push(r.id);
        done();
      }
    };
    next();
  });
  if (signal.aborted) throw new Error('interrupted: run the same command again to resume');
  if (failed.length) throw new Error(`run(s) failed: ${failed.join(', ')} (their logs are under ${join(out, 'runs')}; run again to resume)`);
}

const isMain = process.argv[1] !== undefined && import.meta.url === new URL(`file://${resolve(process.argv[1])}`).href;
if (isMain) {
  main().then(
    () => process.exit(0),
    (e: unknown) => {
      console.error(`study: ${(e as Error).message}`);
      process.exit(1);
    },
  );
}
