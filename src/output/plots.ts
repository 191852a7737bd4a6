// Charts for people: training curves, confusion matrices, class balance, sample images and model
// comparisons. Each chart is a Vega-Lite spec in one shared look, rendered to SVG and PNG by
// render.ts (with the fonts of fonts.ts).
//
// Sample images: drawn as vega `image` marks, each fed a data: URL of an 8-bit grayscale PNG
// encoded here (node:zlib deflate + a CRC-32 table, ~40 lines; no PNG library needed). The
// alternative, one Vega-Lite rect per pixel, works too but means 19,600 marks for 25 images:
// ~1 MB of SVG, ~2× slower, and hairline seams between cells when scaled. The embedded PNGs keep
// the SVG small (~20 KB), render with nearest-neighbour upscaling (`smooth: false`) in resvg and
// browsers alike, and show each image's exact pixels.

import { deflateSync } from 'node:zlib'
import type { TopLevelSpec } from 'vega-lite'
import { defaultFont, latinFirstStack, type CjkFont } from './fonts'
import { pct } from './format'
import { renderSpec, type Rendered } from './render'

// ---------------------------------------------------------------------------------------------
// Public types

export interface HistoryRow {
  epoch: number
  trainLoss: number
  trainAccuracy: number
  valLoss?: number
  valAccuracy?: number
  lr?: number
}

export interface LossCurvesOptions {
  title?: string
  /** Draws a dashed rule at this epoch in every panel (e.g. the early-stopping checkpoint). */
  bestEpoch?: number
}

export interface ConfusionOptions {
  title?: string
  /** Colour (and label) each cell by its share of the true class (row) instead of its count. */
  normalize?: boolean
}

export interface DistributionOptions {
  title?: string
}

export interface SampleGridOptions {
  /** How many images, from the first (default 25). */
  count?: number
  /** Images per row (default ⌈√count⌉). */
  columns?: number
  /** Image side in pixels (default √features). */
  width?: number
  title?: string
}

export type CurveMetric = 'valLoss' | 'valAccuracy' | 'trainLoss' | 'trainAccuracy'

export interface ComparisonOptions {
  title?: string
  /** Which history column to compare (default 'valLoss'). */
  metric?: CurveMetric
}

// ---------------------------------------------------------------------------------------------
// Shared look

const INK = '#333'
const MUTED = '#777'
const TRAIN = '#4c78a8'
const VALID = '#f58518'
const ACCENT = '#e45756'

/** The charts' Vega-Lite config: fonts, colours, sizes (every chart, experiment/plots.ts' included). */
function chartLook(font: CjkFont | null): Record<string, unknown> {
  return {
    font: latinFirstStack(font),
    background: 'white',
    padding: 16,
    view: { stroke: null },
    title: { fontSize: 17, fontWeight: 'bold', color: '#222', anchor: 'start', offset: 12, subtitleFontSize: 12, subtitleColor: MUTED, subtitlePadding: 4 },
    axis: {
      labelFontSize: 11,
      labelColor: INK,
      titleFontSize: 12,
      titleFontWeight: 'normal',
      titleColor: INK,
      domainColor: '#aaa',
      tickColor: '#aaa',
      gridColor: '#ececec',
    },
    legend: { labelFontSize: 12, labelColor: INK, titleFontSize: 11, titleFontWeight: 'normal', titleColor: MUTED, symbolStrokeWidth: 2.5 },
    header: { labelFontSize: 13, labelColor: INK, titleFontSize: 13 },
  }
}

const SCHEMA = 'https://vega.github.io/schema/vega-lite/v5.json'

/** A chart's Vega-Lite spec (without config) rendered in the shared look, to SVG and PNG. */
export function renderChart(spec: Record<string, unknown>): Promise<Rendered> {
  const font = defaultFont()
  return renderSpec({ $schema: SCHEMA, ...spec, config: chartLook(font) } as unknown as TopLevelSpec, { font })
}

const clamp = (x: number, lo: number, hi: number): number => Math.min(hi, Math.max(lo, x))
const isNum = (x: unknown): x is number => typeof x === 'number' && Number.isFinite(x)

function fmt(x: number, digits = 3): string {
  if (x === 0) return '0'
  const a = Math.abs(x)
  if (a >= 1000) return Math.round(x).toLocaleString('en-US')
  if (a >= 0.001) return String(Number(x.toPrecision(digits)))
  return x.toExponential(1)
}

const count = (n: number): string => Math.round(n).toLocaleString('en-US')

/** A Vega expression mapping an integer class index (datum.value) to its name. */
function nameLabelExpr(names: string[]): string {
  return `${JSON.stringify(names)}[datum.value]`
}

function checkNames(classNames: string[], k: number, what: string): void {
  if (!Array.isArray(classNames)) throw new TypeError(`${what}: classNames must be an array of strings`)
  if (classNames.length !== k) throw new RangeError(`${what}: ${classNames.length} class names for ${k} classes`)
}

// ---------------------------------------------------------------------------------------------
// Training curves

function checkHistory(history: HistoryRow[], what: string): void {
  if (!Array.isArray(history) || history.length === 0) throw new RangeError(`${what}: history is empty`)
  for (const [i, h] of history.entries()) {
    if (!isNum(h?.epoch)) throw new TypeError(`${what}: history[${i}].epoch must be a finite number, got ${h?.epoch}`)
  }
}

/** Accuracy axis: fractions get a percent format; values above 1 are taken as percentages already. */
function accuracyAxis(values: number[]): { format: string; title: string } {
  const max = values.length ? Math.max(...values) : 1
  return max > 1.000001 ? { format: '~r', title: 'accuracy (%)' } : { format: '.0%', title: 'accuracy' }
}

/**
 * y scale + axis settings for positive values: a log scale fitted to the data with ticks at
 * 1-2-5 steps when they span more than 8×, else a linear scale that need not start at zero.
 */
function yScaleFor(values: number[], format: string, allowLog = true): { log: boolean; scale: Record<string, unknown>; axis: Record<string, unknown> } {
  if (!allowLog || !logWorthy(values)) return { log: false, scale: { zero: false }, axis: { format } }
  const lo = Math.min(...values)
  const hi = Math.max(...values)
  const ticksAt = (mantissas: number[]): number[] => {
    const out: number[] = []
    for (let e = Math.floor(Math.log10(lo)); e <= Math.ceil(Math.log10(hi)); e++) {
      for (const m of mantissas) {
        const v = Number((m * 10 ** e).toPrecision(6))
        if (v >= lo * 0.999 && v <= hi * 1.001) out.push(v)
      }
    }
    return out
  }
  let ticks = ticksAt([1, 2, 5])
  if (ticks.length < 4) ticks = ticksAt([1, 2, 3, 5])
  return { log: true, scale: { type: 'log', domain: [lo / 1.08, hi * 1.08], nice: false }, axis: { format, values: ticks } }
}

function logWorthy(values: number[]): boolean {
  const pos = values.filter((v) => v > 0)
  return pos.length === values.length && pos.length > 1 && Math.max(...pos) / Math.min(...pos) > 8
}

function epochAxis(history: HistoryRow[]): Record<string, unknown> {
  const epochs = history.map((h) => h.epoch)
  return {
    field: 'epoch',
    type: 'quantitative',
    title: 'epoch',
    scale: { domain: [Math.min(...epochs), Math.max(...epochs)], nice: false, zero: false },
    axis: { format: 'd', tickMinStep: 1, grid: false },
  }
}

/**
 * Two panels, loss and accuracy per epoch, train vs validation (plus a learning-rate panel when
 * the rate changes). A dashed rule marks `bestEpoch` when given.
 */
export async function lossCurves(history: HistoryRow[], opts: LossCurvesOptions = {}): Promise<Rendered> {
  checkHistory(history, 'lossCurves')
  const rows: { epoch: number; split: string; metric: string; value: number }[] = []
  for (const h of history) {
    if (isNum(h.trainLoss)) rows.push({ epoch: h.epoch, split: 'train', metric: 'loss', value: h.trainLoss })
    if (isNum(h.valLoss)) rows.push({ epoch: h.epoch, split: 'validation', metric: 'loss', value: h.valLoss })
    if (isNum(h.trainAccuracy)) rows.push({ epoch: h.epoch, split: 'train', metric: 'accuracy', value: h.trainAccuracy })
    if (isNum(h.valAccuracy)) rows.push({ epoch: h.epoch, split: 'validation', metric: 'accuracy', value: h.valAccuracy })
  }
  const splits = [...new Set(rows.map((r) => r.split))].sort()
  const losses = rows.filter((r) => r.metric === 'loss').map((r) => r.value)
  const accs = rows.filter((r) => r.metric === 'accuracy').map((r) => r.value)
  const lossY = yScaleFor(losses, '~g')
  const acc = accuracyAxis(accs)
  const showPoints = history.length <= 40
  const best = opts.bestEpoch
  if (best !== undefined && !isNum(best)) throw new TypeError(`lossCurves: bestEpoch must be a finite number, got ${best}`)
  const epochs = history.map((h) => h.epoch)
  const lastEpoch = Math.max(...epochs)
  const firstEpoch = Math.min(...epochs)
  const bestOnRight = best !== undefined && best > (firstEpoch + lastEpoch) / 2

  const bestLayers = (withLabel: boolean): Record<string, unknown>[] =>
    best === undefined
      ? []
      : [
          {
            data: { values: [{ epoch: best }] },
            mark: { type: 'rule', color: MUTED, strokeDash: [5, 4], strokeWidth: 1.5, clip: true },
            encoding: { x: { field: 'epoch', type: 'quantitative' } },
          },
          ...(withLabel ? [{
            data: { values: [{ epoch: best, text: `best: epoch ${best}` }] },
            mark: { type: 'text', color: MUTED, fontSize: 11, align: bestOnRight ? 'right' : 'left', dx: bestOnRight ? -5 : 5, baseline: 'top', y: 2 },
            encoding: { x: { field: 'epoch', type: 'quantitative' }, text: { field: 'text' } },
          }] : []),
        ]

  const color = {
    field: 'split',
    type: 'nominal',
    scale: { domain: splits, range: splits.map((s) => (s === 'train' ? TRAIN : VALID)) },
    legend: { title: null, orient: 'top', direction: 'horizontal', symbolType: 'stroke' },
  }
  const panel = (metric: string, y: Record<string, unknown>): Record<string, unknown> => ({
    width: 340,
    height: 230,
    layer: [
      {
        transform: [{ filter: `datum.metric === '${metric}'` }],
        mark: { type: 'line', strokeWidth: 2, point: showPoints ? { size: 28, filled: true } : false },
        encoding: { x: epochAxis(history), y: { field: 'value', type: 'quantitative', ...y }, color },
      },
      ...bestLayers(metric === 'loss'),
    ],
  })

  const panels = [
    panel('loss', { title: lossY.log ? 'loss (log scale)' : 'loss', scale: lossY.scale, axis: lossY.axis }),
    panel('accuracy', { title: acc.title, scale: { zero: false }, axis: { format: acc.format } }),
  ]

  const lrs = history.filter((h) => isNum(h.lr)).map((h) => ({ epoch: h.epoch, lr: h.lr as number }))
  if (lrs.length > 1 && new Set(lrs.map((l) => l.lr)).size > 1) {
    const lrY = yScaleFor(lrs.map((l) => l.lr), '.0e')
    panels.push({
      width: 200,
      height: 230,
      layer: [
        {
          data: { values: lrs },
          mark: { type: 'line', strokeWidth: 2, color: '#888', interpolate: 'step-after' },
          encoding: {
            x: epochAxis(history),
            y: { field: 'lr', type: 'quantitative', title: lrY.log ? 'learning rate (log scale)' : 'learning rate', scale: lrY.scale, axis: lrY.axis },
          },
        },
        ...bestLayers(false),
      ],
    })
  }

  const summaryAt = (h: HistoryRow, label: string): string => {
    const parts = [`train loss ${fmt(h.trainLoss)}`]
    if (isNum(h.valLoss)) parts.push(`val loss ${fmt(h.valLoss)}`)
    if (isNum(h.valAccuracy)) parts.push(`val accuracy ${acc.format === '.0%' ? pct(h.valAccuracy, 1) : fmt(h.valAccuracy)}`)
    else if (isNum(h.trainAccuracy)) parts.push(`train accuracy ${acc.format === '.0%' ? pct(h.trainAccuracy, 1) : fmt(h.trainAccuracy)}`)
    return `${label}: ${parts.join(' · ')}`
  }
  const bestRow = best === undefined ? undefined : history.find((h) => h.epoch === best)
  const lastRow = history.reduce((a, b) => (b.epoch > a.epoch ? b : a))
  const subtitle = bestRow ? summaryAt(bestRow, `best epoch ${best}`) : summaryAt(lastRow, `epoch ${lastRow.epoch} (last)`)

  return renderChart({
    title: { text: opts.title ?? 'Training curves', subtitle },
    data: { values: rows },
    hconcat: panels,
    spacing: 36,
    resolve: { scale: { color: 'shared' }, legend: { color: 'shared' } },
  })
}

/** One line per run: a history column (validation loss by default) per epoch, best epoch marked. */
export async function comparisonCurves(runs: { name: string; history: HistoryRow[] }[], opts: ComparisonOptions = {}): Promise<Rendered> {
  if (!Array.isArray(runs) || runs.length === 0) throw new RangeError('comparisonCurves: no runs given')
  const metric: CurveMetric = opts.metric ?? 'valLoss'
  const higherIsBetter = metric.endsWith('Accuracy')
  const seen = new Map<string, number>()
  const rows: { epoch: number; run: string; value: number }[] = []
  const bests: { epoch: number; run: string; value: number }[] = []
  const order: string[] = []
  for (const r of runs) {
    checkHistory(r.history, `comparisonCurves (run ${JSON.stringify(r.name)})`)
    let name = String(r.name)
    const n = (seen.get(name) ?? 0) + 1
    seen.set(name, n)
    if (n > 1) name = `${name} (${n})`
    const pts = r.history.filter((h) => isNum(h[metric])).map((h) => ({ epoch: h.epoch, run: name, value: h[metric] as number }))
    if (pts.length === 0) continue
    const b = pts.reduce((a, p) => ((higherIsBetter ? p.value > a.value : p.value < a.value) ? p : a))
    const label = `${name} — best ${higherIsBetter && b.value <= 1 ? pct(b.value, 1) : fmt(b.value)} @ ${b.epoch}`
    for (const p of pts) rows.push({ ...p, run: label })
    bests.push({ ...b, run: label })
    order.push(label)
  }
  if (rows.length === 0) throw new RangeError(`comparisonCurves: no run has any ${metric} values`)
  const values = rows.map((r) => r.value)
  const isAcc = metric.endsWith('Accuracy')
  const acc = accuracyAxis(values)
  const yFit = yScaleFor(values, isAcc ? acc.format : '~g', !isAcc)
  const logY = yFit.log
  const titles: Record<CurveMetric, string> = { valLoss: 'validation loss', valAccuracy: 'validation accuracy', trainLoss: 'training loss', trainAccuracy: 'training accuracy' }
  const yTitle = isAcc ? titles[metric] + (acc.format === '.0%' ? '' : ' (%)') : titles[metric] + (logY ? ' (log scale)' : '')
  const epochs = rows.map((r) => r.epoch)
  const maxLen = Math.max(...runs.map((r) => r.history.length))
  const color = {
    field: 'run',
    type: 'nominal',
    sort: order,
    scale: { scheme: order.length <= 10 ? 'tableau10' : 'tableau20' },
    legend: { title: `model — best ${isAcc ? '(highest)' : '(lowest)'} @ epoch`, orient: 'right', symbolType: 'stroke', labelLimit: 360, titleLimit: 360 },
  }
  const x = {
    field: 'epoch',
    type: 'quantitative',
    title: 'epoch',
    scale: { domain: [Math.min(...epochs), Math.max(...epochs)], nice: false, zero: false },
    axis: { format: 'd', tickMinStep: 1, grid: false },
  }
  const y = { field: 'value', type: 'quantitative', title: yTitle, scale: yFit.scale, axis: yFit.axis }
  const winner = bests.reduce((a, b) => ((higherIsBetter ? b.value > a.value : b.value < a.value) ? b : a))
  return renderChart({
    title: {
      text: opts.title ?? `Model comparison: ${titles[metric]}`,
      subtitle: `${order.length} model${order.length === 1 ? '' : 's'} · best overall: ${winner.run.split(' — ')[0]} (${isAcc && winner.value <= 1 ? pct(winner.value, 1) : fmt(winner.value)} at epoch ${winner.epoch})`,
    },
    width: 520,
    height: 300,
    layer: [
      { data: { values: rows }, mark: { type: 'line', strokeWidth: 2, point: maxLen <= 40 ? { size: 22, filled: true } : false }, encoding: { x, y, color } },
      { data: { values: bests }, mark: { type: 'point', filled: true, size: 110, stroke: 'white', strokeWidth: 1.5, opacity: 1 }, encoding: { x, y, color } },
    ],
  })
}

// ---------------------------------------------------------------------------------------------
// Confusion matrix

/**
 * K×K heatmap: row = true class, column = predicted class, class names on both axes. Correct
 * predictions (the diagonal) are blue and errors orange, each on its own square-root scale, so
 * the worst confusions stand out even next to a diagonal of much larger counts; empty cells stay
 * white. Colour is the count or, with `normalize`, the share of the true class (row). Numbers are
 * printed in the cells when K ≤ 20.
 */
export async function confusionHeatmap(confusion: ArrayLike<number>, classNames: string[], opts: ConfusionOptions = {}): Promise<Rendered> {
  const K = classNames?.length ?? 0
  if (K === 0) throw new RangeError('confusionHeatmap: no class names given')
  checkNames(classNames, K, 'confusionHeatmap')
  if (!confusion || confusion.length !== K * K) throw new RangeError(`confusionHeatmap: confusion must have K*K = ${K * K} entries for ${K} class names, got ${confusion?.length}`)
  const normalize = opts.normalize ?? false
  const rowSums = new Array<number>(K).fill(0)
  let total = 0
  let trace = 0
  for (let i = 0; i < K * K; i++) {
    const c = confusion[i]
    if (!(isNum(c) && c >= 0)) throw new RangeError(`confusionHeatmap: confusion[${i}] must be a non-negative count, got ${c}`)
    rowSums[Math.floor(i / K)] += c
    total += c
    if (i % (K + 1) === 0) trace += c
  }
  const cells: { t: number; p: number; v: number; r: number; x: number; label: string; dark: boolean }[] = []
  for (let t = 0; t < K; t++) {
    for (let p = 0; p < K; p++) {
      const v = confusion[t * K + p]
      if (v === 0) continue
      const r = rowSums[t] > 0 ? v / rowSums[t] : 0
      // Shares under 1% get no number (the colour still shows them): fewer digits to wade through.
      const label = normalize ? (r >= 0.995 ? '100%' : r < 0.01 ? '' : `${Math.round(r * 100)}%`) : v >= 100_000 ? `${Math.round(v / 1000)}k` : String(Math.round(v * 100) / 100)
      cells.push({ t, p, v, r, x: normalize ? r : v, label, dark: false })
    }
  }
  const diag = cells.filter((c) => c.t === c.p)
  const off = cells.filter((c) => c.t !== c.p)
  const maxDiag = normalize ? 1 : Math.max(1, ...diag.map((c) => c.x))
  const maxOff = Math.max(normalize ? 0.01 : 1, ...off.map((c) => c.x))
  // White text on the darker part of each ramp (sqrt scale: 0.45 of the domain ≈ 2/3 of the ramp).
  for (const c of diag) c.dark = c.x > 0.45 * maxDiag
  for (const c of off) c.dark = c.x > 0.45 * maxOff

  const step = clamp(Math.floor(680 / K), 14, 46)
  const maxNameLen = Math.max(...classNames.map((n) => [...String(n)].length))
  const domain = Array.from({ length: K }, (_, i) => i)
  const labelExpr = nameLabelExpr(classNames.map(String))
  // A pale background with white lines between cells: rows and columns stay traceable across a
  // sparse 49×49 matrix, and empty cells read as "none" rather than as margin.
  const axisCommon = { labelExpr, ticks: false, domain: false, labelPadding: 5, labelFontSize: step >= 18 ? 12 : 11, titleFontSize: 13, titlePadding: 10, labelLimit: 140, grid: true, gridColor: 'white', gridWidth: step >= 20 ? 1 : 0.5, bandPosition: 0 }
  const legend = (title: string): Record<string, unknown> => ({ title, format: normalize ? '.0%' : '~s', gradientLength: clamp(step * K * 0.3, 90, 200), orient: 'right', tickCount: 4 })
  // Three-stop ramps (light → vivid → dark): on a √ scale the middle stop sits at a quarter of the max.
  const cellRect = (values: typeof cells, field: string, range: [string, string, string], max: number, title: string): Record<string, unknown> => ({
    data: { values },
    mark: { type: 'rect', stroke: 'white', strokeWidth: step >= 20 ? 1 : 0.5 },
    encoding: { color: { field, type: 'quantitative', scale: { type: 'sqrt', range, interpolate: 'lab', domain: [0, max / 4, max] }, legend: legend(title) } },
  })
  const textLayer =
    K <= 20
      ? [
          {
            data: { values: cells },
            mark: { type: 'text', fontSize: step >= 36 ? 12 : 10 },
            encoding: { text: { field: 'label' }, color: { condition: { test: 'datum.dark', value: 'white' }, value: '#222' } },
          },
        ]
      : []
  const errors = total - trace
  const subtitle = [
    `${count(total)} samples · accuracy ${total > 0 ? pct(trace / total, 1) : 'n/a'} · ${count(errors)} errors`,
    `blue: correct, orange: errors · shade: ${normalize ? 'share of the true class' : 'count'} (√ scale)`,
  ]
  return renderChart({
    title: { text: opts.title ?? 'Confusion matrix', subtitle },
    width: { step },
    height: { step },
    view: { fill: '#f7f7f7', stroke: null },
    encoding: {
      x: { field: 'p', type: 'ordinal', title: 'predicted class', scale: { domain }, axis: { ...axisCommon, orient: 'top', labelAngle: maxNameLen > 2 ? -50 : 0, labelAlign: maxNameLen > 2 ? 'left' : 'center' } },
      y: { field: 't', type: 'ordinal', title: 'true class', scale: { domain }, axis: { ...axisCommon } },
    },
    layer: [
      // Diagonal guide, visible where a class was never predicted correctly.
      { data: { values: domain.map((i) => ({ t: i, p: i })) }, mark: { type: 'rect', fill: '#e6e6e6', stroke: 'white', strokeWidth: step >= 20 ? 1 : 0.5 } },
      cellRect(diag.map((c) => ({ ...c, correct: c.x })), 'correct', ['#deebf7', '#4292c6', '#08306b'], maxDiag, 'correct'),
      cellRect(off.map((c) => ({ ...c, error: c.x })), 'error', ['#fff1e2', '#fd8d3c', '#a63603'], maxOff, 'errors'),
      ...textLayer,
    ],
    resolve: { scale: { color: 'independent' }, legend: { color: 'independent' } },
  })
}

// ---------------------------------------------------------------------------------------------
// Class distribution

/** Bar chart of samples per class, with a dashed rule at the mean (i.e. the balanced count). */
export async function classDistribution(counts: number[], classNames: string[], opts: DistributionOptions = {}): Promise<Rendered> {
  const K = counts?.length ?? 0
  if (K === 0) throw new RangeError('classDistribution: no counts given')
  checkNames(classNames, K, 'classDistribution')
  counts.forEach((c, i) => {
    if (!(isNum(c) && c >= 0)) throw new RangeError(`classDistribution: counts[${i}] must be a non-negative number, got ${c}`)
  })
  const total = counts.reduce((a, b) => a + b, 0)
  const mean = total / K
  let lo = 0
  let hi = 0
  counts.forEach((c, i) => {
    if (c < counts[lo]) lo = i
    if (c > counts[hi]) hi = i
  })
  const step = clamp(Math.floor(760 / K), 13, 56)
  const maxNameLen = Math.max(...classNames.map((n) => [...String(n)].length))
  const values = counts.map((n, i) => ({ i, n, label: count(n), below: n < mean }))
  const ratio = counts[lo] > 0 ? `${(counts[hi] / counts[lo]).toFixed(1)}×` : '∞'
  // Class names stay out of the subtitle: mixed Latin/kana text is slow to rasterise (see rasterize).
  const subtitle = [`${count(total)} samples in ${K} classes · ${count(counts[lo])} to ${count(counts[hi])} per class (max/min ${ratio})`, 'lighter bars: below the mean']
  const meanData = { values: [{ mean, label: `mean ${mean >= 100 ? count(mean) : fmt(mean, 3)}` }] }
  return renderChart({
    title: { text: opts.title ?? 'Samples per class', subtitle },
    width: { step },
    height: 260,
    layer: [
      // The mean rule goes first, behind the bars and their numbers.
      { data: meanData, mark: { type: 'rule', color: ACCENT, strokeDash: [6, 4], strokeWidth: 1.5 }, encoding: { y: { field: 'mean', type: 'quantitative' } } },
      {
        data: { values },
        mark: { type: 'bar', width: { band: 0.78 }, cornerRadiusTopLeft: 2, cornerRadiusTopRight: 2 },
        encoding: {
          x: {
            field: 'i',
            type: 'ordinal',
            title: 'class',
            scale: { domain: counts.map((_, i) => i) },
            axis: { labelExpr: nameLabelExpr(classNames.map(String)), labelAngle: maxNameLen > 2 ? -50 : 0, labelFontSize: 12, ticks: false, labelPadding: 5 },
          },
          y: { field: 'n', type: 'quantitative', title: 'samples', axis: { format: '~s', tickCount: 6 } },
          color: {
            field: 'below',
            type: 'nominal',
            scale: { domain: [false, true], range: [TRAIN, '#9ecae9'] },
            legend: null,
          },
        },
      },
      ...(K <= 24
        ? [{ data: { values }, mark: { type: 'text', baseline: 'bottom', dy: -3, fontSize: 10, color: INK }, encoding: { x: { field: 'i', type: 'ordinal' }, y: { field: 'n', type: 'quantitative' }, text: { field: 'label' } } }]
        : []),
      { data: meanData, mark: { type: 'text', color: ACCENT, align: 'left', baseline: 'middle', dx: 6, fontSize: 11, x: { expr: 'width' } }, encoding: { y: { field: 'mean', type: 'quantitative' }, text: { field: 'label' } } },
    ],
  })
}

// ---------------------------------------------------------------------------------------------
// Sample images

const CRC_TABLE = (() => {
  const t = new Uint32Array(256)
  for (let n = 0; n < 256; n++) {
    let c = n
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1
    t[n] = c >>> 0
  }
  return t
})()

function crc32(bytes: Uint8Array): number {
  let c = 0xffffffff
  for (let i = 0; i < bytes.length; i++) c = CRC_TABLE[(c ^ bytes[i]) & 0xff] ^ (c >>> 8)
  return (c ^ 0xffffffff) >>> 0
}

function pngChunk(type: string, data: Uint8Array): Buffer {
  const out = Buffer.alloc(12 + data.length)
  out.writeUInt32BE(data.length, 0)
  out.write(type, 4, 'latin1')
  out.set(data, 8)
  out.writeUInt32BE(crc32(out.subarray(4, 8 + data.length)), 8 + data.length)
  return out
}

/** Encodes an 8-bit grayscale image (row-major, 0 = black) as a PNG. */
export function encodeGrayPng(gray: Uint8Array, width: number, height: number): Buffer {
  if (gray.length !== width * height) throw new RangeError(`encodeGrayPng: ${gray.length} bytes for ${width}×${height}`)
  const raw = Buffer.alloc((width + 1) * height)
  for (let y = 0; y < height; y++) {
    raw[y * (width + 1)] = 0 // filter: none
    raw.set(gray.subarray(y * width, (y + 1) * width), y * (width + 1) + 1)
  }
  const ihdr = Buffer.alloc(13)
  ihdr.writeUInt32BE(width, 0)
  ihdr.writeUInt32BE(height, 4)
  ihdr[8] = 8 // bit depth
  ihdr[9] = 0 // colour type: grayscale
  return Buffer.concat([
    Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]),
    pngChunk('IHDR', ihdr),
    pngChunk('IDAT', deflateSync(raw)),
    pngChunk('IEND', new Uint8Array(0)),
  ])
}

/**
 * A grid of the first `count` images (width×width, one byte per pixel, 255 = ink), drawn dark on
 * white like ink on paper, each with its label's name underneath.
 */
export async function sampleGrid(
  images: Uint8Array,
  features: number,
  labels: ArrayLike<number> | null,
  classNames: string[] | null,
  opts: SampleGridOptions = {},
): Promise<Rendered> {
  if (!(images instanceof Uint8Array)) throw new TypeError('sampleGrid: images must be a Uint8Array (one byte per pixel)')
  if (!(Number.isInteger(features) && features > 0)) throw new RangeError(`sampleGrid: features must be a positive integer, got ${features}`)
  if (images.length % features !== 0) throw new RangeError(`sampleGrid: ${images.length} bytes is not a whole number of ${features}-pixel images`)
  const side = opts.width ?? Math.round(Math.sqrt(features))
  if (!(Number.isInteger(side) && side > 0 && side * side === features)) {
    throw new RangeError(`sampleGrid: images must be square: width ${side} does not give ${features} features (width² = ${side * side})`)
  }
  const available = images.length / features
  const n = Math.min(opts.count ?? 25, available)
  if (!(Number.isInteger(n) && n > 0)) throw new RangeError(`sampleGrid: nothing to draw (count ${opts.count ?? 25}, ${available} images)`)
  if (labels && labels.length < n) throw new RangeError(`sampleGrid: ${labels.length} labels for ${n} images`)
  const columns = Math.min(n, opts.columns ?? Math.ceil(Math.sqrt(n)))
  if (!(Number.isInteger(columns) && columns > 0)) throw new RangeError(`sampleGrid: columns must be a positive integer, got ${opts.columns}`)
  const rows = Math.ceil(n / columns)

  const cell = side * Math.max(1, Math.round(84 / side)) // 28 px → 84 px tiles
  const gap = 12
  const labelH = labels ? 22 : 0
  const nameOf = (l: number): string => (classNames && Number.isInteger(l) && l >= 0 && l < classNames.length ? String(classNames[l]) : String(l))

  const tiles: { x: number; y: number; x2: number; y2: number; cx: number; ly: number; url: string; name: string }[] = []
  const gray = new Uint8Array(features)
  for (let k = 0; k < n; k++) {
    const img = images.subarray(k * features, (k + 1) * features)
    for (let i = 0; i < features; i++) gray[i] = 255 - img[i] // 255 = ink → black
    const x = (k % columns) * (cell + gap)
    const y = Math.floor(k / columns) * (cell + labelH + gap)
    tiles.push({
      x,
      y,
      x2: x + cell,
      y2: y + cell,
      cx: x + cell / 2,
      ly: y + cell + 4,
      url: `data:image/png;base64,${encodeGrayPng(gray, side, side).toString('base64')}`,
      name: labels ? nameOf(labels[k]) : '',
    })
  }
  const width = columns * (cell + gap) - gap
  const height = rows * (cell + labelH + gap) - gap
  const pos = (field: string): Record<string, unknown> => ({ field, type: 'quantitative', scale: null, axis: null })
  const shown = labels ? new Set(Array.from({ length: n }, (_, k) => labels[k])).size : 0
  const subtitle = `first ${n} of ${count(available)} images${labels ? ` · ${shown} distinct label${shown === 1 ? '' : 's'}` : ''}`
  return renderChart({
    title: { text: opts.title ?? 'Samples', subtitle },
    width,
    height,
    data: { values: tiles },
    layer: [
      { mark: { type: 'rect', fill: 'white', stroke: '#d0d0d0', strokeWidth: 1, aria: false }, encoding: { x: pos('x'), x2: { field: 'x2' }, y: pos('y'), y2: { field: 'y2' } } },
      {
        mark: { type: 'image', width: cell, height: cell, align: 'left', baseline: 'top', smooth: false, aria: false },
        encoding: { x: pos('x'), y: pos('y'), url: { field: 'url' } },
      },
      ...(labels
        ? [{ mark: { type: 'text', fontSize: 15, baseline: 'top', align: 'center', color: '#222' }, encoding: { x: pos('cx'), y: pos('ly'), text: { field: 'name' } } }]
        : []),
    ],
  })
}
