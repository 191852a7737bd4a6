// The experiment's own charts, made the way plots.ts makes its charts (a Vega-Lite spec rendered
// by vega to SVG and by resvg to PNG): the search's most important effect (validation loss
// against learning rate, per optimizer) and the M1/M2 agreement (training loss per epoch, engine
// against reference). They are drawn in the look of every other chart; until 2026-12 they had a
// quoted font stack of their own, which resvg rasterised about 20× slower (fonts.ts latinFirstStack).
import { renderChart } from '../output/plots'
import type { Rendered } from '../output/render'
import type { TrialLog } from './search'

/**
 * Validation loss (best epoch of each trial) against the learning rate, log–log, one colour per
 * optimizer; filled points ran to their end, hollow ones were dropped by successive halving; the
 * selected trial is ringed.
 */
export async function lrEffectChart(trials: TrialLog[], opts: { title?: string } = {}): Promise<Rendered> {
  const rows = trials.filter((t) => Number.isFinite(t.valLoss) && t.valLoss > 0).map((t) => ({
    lr: t.lr, valLoss: t.valLoss, optimizer: t.optimizer, run: t.stoppedBy.startsWith('halving') ? 'dropped by halving' : 'ran to its end',
    trial: t.id, selected: t.selected,
  }))
  if (rows.length === 0) throw new RangeError('lrEffectChart: no trial has a finite validation loss')
  const diverged = trials.length - rows.length
  const x = { field: 'lr', type: 'quantitative', title: 'learning rate η0 (log scale)', scale: { type: 'log', nice: false, padding: 12 }, axis: { format: '.0e', grid: true } }
  const y = { field: 'valLoss', type: 'quantitative', title: 'best validation loss (log scale)', scale: { type: 'log', nice: false, padding: 12 } }
  return renderChart({
    title: {
      text: opts.title ?? 'Search: validation loss against learning rate',
      subtitle: `${trials.length} trials${diverged ? ` (${diverged} diverged, not shown)` : ''} · colour = optimizer · hollow = dropped by successive halving · ringed = selected`,
    },
    width: 480,
    height: 300,
    data: { values: rows },
    layer: [
      {
        mark: { type: 'point', size: 90, strokeWidth: 2 },
        encoding: {
          x, y,
          color: { field: 'optimizer', type: 'nominal', scale: { scheme: 'tableau10' }, legend: { title: 'optimizer', orient: 'right' } },
          fill: { condition: { test: "datum.run === 'ran to its end'", field: 'optimizer', type: 'nominal' }, value: 'white' },
          shape: { value: 'circle' },
        },
      },
      {
        transform: [{ filter: 'datum.selected' }],
        mark: { type: 'point', size: 360, strokeWidth: 2, color: '#222', filled: false },
        encoding: { x, y },
      },
      {
        mark: { type: 'text', dx: 9, dy: -8, fontSize: 10, color: '#777' },
        encoding: { x, y, text: { field: 'trial', type: 'nominal' } },
      },
    ],
  })
}

/**
 * Training loss per epoch of the engine and of the reference from the same start, and (right) how
 * far apart they are, next to how far apart they are when the reference restarts every epoch from
 * the engine's state (re-synchronised), and how far the engine drifts from twins of itself whose
 * weights are jittered by one float32 rounding per step — the yardstick for what float32 against
 * float64 arithmetic can explain.
 */
export async function agreementChart(
  native: { epoch: number; trainLoss: number }[],
  reference: { epoch: number; trainLoss: number }[],
  twins: { epoch: number; trainLoss: number }[][] = [],
  opts: { title?: string; resync?: { epoch: number; relDiff: number }[] } = {},
): Promise<Rendered> {
  const n = Math.min(native.length, reference.length)
  if (n === 0) throw new RangeError('agreementChart: no common epochs')
  const rows: { epoch: number; run: string; loss: number }[] = []
  const diffs: { epoch: number; pair: string; rel: number }[] = []
  const floor = 1e-12 // log scale: an exact match is drawn at the floor
  for (let i = 0; i < n; i++) {
    rows.push({ epoch: native[i].epoch, run: 'engine (M1 settings)', loss: native[i].trainLoss })
    rows.push({ epoch: reference[i].epoch, run: 'reference (M2)', loss: reference[i].trainLoss })
    diffs.push({ epoch: native[i].epoch, pair: 'reference', rel: Math.max(floor, Math.abs(native[i].trainLoss - reference[i].trainLoss) / Math.abs(reference[i].trainLoss)) })
    const tw = twins.filter((h) => h[i]).map((h) => Math.abs(h[i].trainLoss - native[i].trainLoss) / Math.abs(native[i].trainLoss))
    if (tw.length) diffs.push({ epoch: native[i].epoch, pair: 'jittered engine twin (farthest)', rel: Math.max(floor, ...tw) })
  }
  for (const r of opts.resync ?? []) if (r.epoch <= native[n - 1].epoch) diffs.push({ epoch: r.epoch, pair: 'reference, re-synchronised each epoch', rel: Math.max(floor, r.relDiff) })
  const worst = Math.max(...diffs.filter((d) => d.pair === 'reference').map((d) => d.rel))
  const resyncWorst = opts.resync?.length ? Math.max(...opts.resync.map((r) => r.relDiff)) : undefined
  const lastEpoch = Math.max(1, native[n - 1].epoch)
  const ticks = lastEpoch <= 20 ? { values: Array.from({ length: lastEpoch }, (_, i) => i + 1) } : { tickMinStep: 1 }
  const x = { field: 'epoch', type: 'quantitative', title: 'epoch', axis: { format: 'd', ...ticks }, scale: { domain: [1, lastEpoch], nice: false } }
  return renderChart({
    title: {
      text: opts.title ?? 'M1 (engine) against M2 (reference): training loss',
      subtitle: [
        `same split, initial weights and mini-batches · largest relative difference ${(worst * 100).toPrecision(2)}% over ${n} epoch${n === 1 ? '' : 's'}`,
        ...(resyncWorst !== undefined ? [`each epoch re-synchronised (the reference starting from the engine's state): at most ${(resyncWorst * 100).toPrecision(2)}%`] : []),
      ],
    },
    hconcat: [
      {
        width: 320, height: 230,
        data: { values: rows },
        mark: { type: 'line', point: true, strokeWidth: 2 },
        encoding: { x, y: { field: 'loss', type: 'quantitative', title: 'training loss (log scale)', scale: { type: 'log' } }, color: { field: 'run', type: 'nominal', scale: { range: ['#4c78a8', '#f58518'] }, legend: { title: null, orient: 'top', labelLimit: 300 } } },
      },
      {
        width: 320, height: 230,
        data: { values: diffs },
        mark: { type: 'line', point: true, strokeWidth: 2 },
        encoding: {
          x,
          y: { field: 'rel', type: 'quantitative', title: 'relative training-loss difference (log)', scale: { type: 'log' }, axis: { format: '.0e' } },
          color: { field: 'pair', type: 'nominal', scale: { domain: ['reference', 'reference, re-synchronised each epoch', 'jittered engine twin (farthest)'], range: ['#e45756', '#54a24b', '#999999'] }, legend: { title: 'distance from the engine', orient: 'top', direction: 'vertical', labelLimit: 400, titleLimit: 400 } },
        },
      },
    ],
    resolve: { scale: { color: 'independent' }, legend: { color: 'independent' } },
  })
}

const NOISE_AXIS: Record<string, string> = { gaussian: 'Gaussian noise σ (pixel units, 0..255)', 'salt-pepper': 'salt and pepper: share of pixels', occlusion: 'occlusion: side of the black square (pixels)' }

/** Test accuracy against the noise level, one line per model (the study's noise table, one kind). */
export async function noiseChart(kind: string, rows: { model: string; level: number; accuracy: number }[], opts: { samples: number; seed: number; title?: string }): Promise<Rendered> {
  if (rows.length === 0) throw new RangeError('noiseChart: no rows')
  return renderChart({
    title: { text: opts.title ?? `Test accuracy under ${kind} noise`, subtitle: `${opts.samples} test images · the same corruption for every model (seed ${opts.seed}) · level 0 = clean` },
    width: 440,
    height: 280,
    data: { values: rows },
    mark: { type: 'line', point: { size: 45, filled: true }, strokeWidth: 2 },
    encoding: {
      x: { field: 'level', type: 'quantitative', title: NOISE_AXIS[kind] ?? kind },
      y: { field: 'accuracy', type: 'quantitative', title: 'test accuracy', scale: { domain: [0, 1] }, axis: { format: '.0%' } },
      color: { field: 'model', type: 'nominal', scale: { scheme: 'tableau10' }, legend: { title: 'model', orient: 'right' } },
    },
  })
}
