// `kana-native report DIR`: one self-contained HTML file for an experiment directory (written by
// `kana-native experiment`) or a single `train` run directory. Self-contained: every picture is
// inlined as a data: URL (SVG when the directory has one, else PNG), the CSS is inline, and there
// are no scripts, fonts or links to fetch — the file opens offline and can be mailed.
//
// Fonts come from the system: text is set in a font-family list that ends with Japanese fonts
// ("Noto Sans CJK JP", Hiragino, Yu Gothic, Meiryo), so Kuzushiji class names render wherever one
// of them is installed (Debian: fonts-noto-cjk). The SVG charts name the same families.
import { existsSync, promises as fsp, realpathSync } from 'node:fs'
import { basename, isAbsolute, join, relative, resolve, sep } from 'node:path'
import { writeFileAtomic } from './atomic'
import { pct as fractionPct, relPct as relDiffPct } from './format'
import { machineFacts, type MachineFacts } from '../engine/machine'
import type { ClassMetrics } from './metrics'

export interface ReportOptions {
  /** Output file; default DIR/report.html. */
  out?: string
}

export class ReportError extends Error {
  readonly code = 'EREPORT'
}

const FONTS = `system-ui, -apple-system, "Segoe UI", "Helvetica Neue", Arial, "Noto Sans", "Noto Sans CJK JP", "Hiragino Sans", "Hiragino Kaku Gothic ProN", "Yu Gothic", Meiryo, sans-serif`
const JA_FONTS = `"Noto Sans CJK JP", "Hiragino Sans", "Hiragino Kaku Gothic ProN", "Yu Gothic", Meiryo, "IPAexGothic", sans-serif`

const CSS = `
:root { --ink: #222; --muted: #666; --line: #ddd; --accent: #4c78a8; --bad: #c0392b; --good: #2e7d32; }
* { box-sizing: border-box; }
body { font-family: ${FONTS}; color: var(--ink); margin: 0; background: #fafafa; line-height: 1.45; }
main { max-width: 1200px; margin: 0 auto; padding: 24px 32px 64px; background: white; }
h1 { font-size: 26px; margin: 8px 0 4px; }
h2 { font-size: 20px; margin: 36px 0 10px; padding-top: 12px; border-top: 2px solid var(--line); }
h3 { font-size: 16px; margin: 22px 0 8px; }
p, li { max-width: 900px; }
.sub { color: var(--muted); margin: 0 0 12px; }
nav ol { columns: 3; padding-left: 20px; margin: 8px 0 0; }
nav a { color: var(--accent); text-decoration: none; }
table { border-collapse: collapse; margin: 8px 0 16px; font-size: 13.5px; }
th, td { border: 1px solid var(--line); padding: 4px 8px; vertical-align: top; }
th { background: #f3f5f8; text-align: left; font-weight: 600; }
td.num { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
tr.selected td { background: #eef6ee; }
.ja, .classname { font-family: ${JA_FONTS}; font-size: 15px; }
figure { margin: 10px 0 18px; }
figure img { max-width: 100%; height: auto; border: 1px solid #eee; }
figcaption { color: var(--muted); font-size: 13px; }
.grid { display: grid; grid-template-columns: repeat(auto-fill, minmax(520px, 1fr)); gap: 12px 24px; }
pre { background: #f6f8fa; border: 1px solid var(--line); padding: 10px 12px; overflow-x: auto; font-size: 12.5px; }
code { font-family: ui-monospace, "DejaVu Sans Mono", Menlo, Consolas, monospace; }
.pass { color: var(--good); font-weight: 600; }
.fail { color: var(--bad); font-weight: 600; }
.note { color: var(--muted); font-size: 13px; }
details { margin: 6px 0; }
summary { cursor: pointer; color: var(--accent); }
`

const esc = (s: unknown): string =>
  String(s ?? '').replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;')

/** A count: grouped digits for a number, anything else (a hand-edited file's string) escaped. */
const int = (x: unknown): string => (typeof x === 'number' && Number.isFinite(x) ? x.toLocaleString('en-US') : esc(x))

// The files' numbers as format.ts prints them; anything but a finite number (a diverged loss is
// the string "NaN" in the JSON, an older file may lack the field) is a dash.
const finite = (x: unknown): x is number => typeof x === 'number' && Number.isFinite(x)
const pct = (x: unknown, d = 2): string => (finite(x) ? fractionPct(x, d) : '—')
const relPct = (x: unknown): string => (finite(x) ? relDiffPct(x) : '—')
const num = (x: unknown, d = 4): string => (finite(x) ? x.toFixed(d) : esc(x ?? '—'))

/**
 * `rel` (names of ours, or paths read from experiment.json such as models[].dir) resolved inside
 * `root`; refused when it leaves it, by its text (`..`, an absolute path) or through a link: the
 * report inlines what it reads, so a crafted experiment.json must not make it read elsewhere.
 */
function inside(root: string, rel: unknown[]): string {
  const bad = rel.find((p) => typeof p !== 'string')
  if (bad !== undefined || rel.length === 0) throw new ReportError(`${root}: a path in its records is not a string (${esc(JSON.stringify(bad) ?? String(bad)).slice(0, 80)})`)
  const p = resolve(root, ...(rel as string[]))
  const shown = JSON.stringify((rel as string[]).join('/').slice(0, 200))
  if (!within(root, p)) throw new ReportError(`${root}: the path ${shown} leaves the directory; the report reads only files inside it`)
  if (existsSync(p)) {
    // the real file (or folder), after every link, must lie inside the real directory too
    const real = realpathSync(p)
    if (!within(realpathSync(root), real)) throw new ReportError(`${root}: ${shown} leads outside the directory (to ${real}) through a symbolic link; the report reads only files inside it`)
  }
  return p
}

const within = (root: string, p: string): boolean => {
  const r = relative(root, p)
  return r === '' || (!r.startsWith(`..${sep}`) && r !== '..' && !isAbsolute(r))
}

async function readJson<T = any>(root: string, rel: unknown[]): Promise<T | undefined> {
  const path = inside(root, rel)
  if (!existsSync(path)) return undefined
  try {
    return JSON.parse(await fsp.readFile(path, 'utf8')) as T
  } catch (e) {
    throw new ReportError(`${path} is not valid JSON: ${(e as Error).message}`)
  }
}

/** A picture as an <img> with a data: URL: `<base>.svg` if present, else `<base>.png`; a note if neither exists. */
async function picture(root: string, rel: unknown[], alt: string, caption?: string, id?: string): Promise<string> {
  const base = inside(root, rel)
  let src: string | undefined
  const svg = inside(root, [...rel.slice(0, -1), `${rel[rel.length - 1]}.svg`])
  const png = inside(root, [...rel.slice(0, -1), `${rel[rel.length - 1]}.png`])
  if (existsSync(svg)) src = `data:image/svg+xml;base64,${(await fsp.readFile(svg)).toString('base64')}`
  else if (existsSync(png)) src = `data:image/png;base64,${(await fsp.readFile(png)).toString('base64')}`
  if (!src) return `<p class="note">(no picture: ${esc(basename(base))}.svg/.png is missing)</p>`
  return `<figure${id ? ` id="${esc(id)}"` : ''}><img src="${src}" alt="${esc(alt)}">${caption ? `<figcaption>${esc(caption)}</figcaption>` : ''}</figure>`
}

function table(head: string[], rows: string[][], opts: { numeric?: number[]; rowClass?: (i: number) => string; id?: string } = {}): string {
  const numeric = new Set(opts.numeric ?? [])
  return `<table${opts.id ? ` id="${esc(opts.id)}"` : ''}><thead><tr>${head.map((h) => `<th>${esc(h)}</th>`).join('')}</tr></thead><tbody>${rows
    .map((r, i) => `<tr${opts.rowClass?.(i) ? ` class="${opts.rowClass(i)}"` : ''}>${r.map((c, j) => `<td${numeric.has(j) ? ' class="num"' : ''}>${c}</td>`).join('')}</tr>`)
    .join('')}</tbody></table>`
}

function perClassTable(perClass: ClassMetrics[] | undefined, classNames: string[]): string {
  if (!perClass) return ''
  return table(
    ['class', 'name', 'precision', 'recall', 'F1', 'support'],
    perClass.map((c, k) => [String(k), `<span class="classname">${esc(classNames[k] ?? k)}</span>`, pct(c.precision, 1), pct(c.recall, 1), pct(c.f1, 1), esc(c.support)]),
    { numeric: [0, 2, 3, 4, 5] },
  )
}

interface DataSummary {
  source?: Record<string, unknown>
  features: number
  classes: number
  classNames: string[]
  samples: { train: number; validation: number; test: number }
  counts?: number[]
  perSplit?: Record<string, number[]>
}

function dataSection(d: DataSummary, pictures: string): string {
  const src = d.source ?? {}
  const srcRows = Object.entries(src).map(([k, v]) => [esc(k), `<code>${esc(typeof v === 'string' ? v : JSON.stringify(v))}</code>`])
  const total = d.samples.train + d.samples.validation + d.samples.test
  const side = Math.sqrt(d.features)
  let classRows = ''
  if (d.perSplit) {
    classRows = `<h3>Samples per class and split</h3>` + table(
      ['class', 'name', 'train', 'validation', 'test', 'total'],
      d.classNames.map((name, k) => [String(k), `<span class="classname">${esc(name)}</span>`, esc(d.perSplit!.train?.[k]), esc(d.perSplit!.validation?.[k]), esc(d.perSplit!.test?.[k]), esc(d.counts?.[k])]),
      { numeric: [0, 2, 3, 4, 5] },
    )
  } else {
    classRows = `<p>Classes: ${d.classNames.map((n, k) => `${k} <span class="classname">${esc(n)}</span>`).join(', ')}</p>`
  }
  return `<section id="data"><h2>Data set</h2>
<p>${int(total)} labelled images of ${int(d.features)} features${Number.isInteger(side) ? ` (${side}×${side} pixels)` : ''}, ${int(d.classes)} classes; stratified split: <b>${int(d.samples.train)}</b> train, <b>${int(d.samples.validation)}</b> validation, <b>${int(d.samples.test)}</b> test.</p>
${srcRows.length ? table(['source', ''], srcRows) : ''}
<div class="grid">${pictures}</div>
${classRows}
</section>`
}

function machineSection(m: (MachineFacts & { loadAverageAtEnd?: number[] }) | undefined, label: string, timings: Record<string, number> | undefined, extra = ''): string {
  const now = machineFacts()
  const rows: string[][] = []
  const add = (k: string, v: string) => rows.push([esc(k), v])
  if (m) {
    add('CPU', esc(m.cpuModel))
    add('cores', `${esc(m.cpus)} logical (${esc(m.availableParallelism)} available to the process)`)
    add('memory', `${esc(m.memoryGiB)} GiB`)
    add('OS', esc(m.os))
    add('Node.js', esc(m.node))
    add('kana-native', esc(m.kanaNative))
    add('engine CPU features (native.cpuFeatures())', `<code>${esc(JSON.stringify(m.cpuFeatures))}</code>`)
    add('load average (1, 5, 15 min) at start', esc(m.loadAverage?.join(', ')))
    if (m.loadAverageAtEnd) add('load average at end', esc(m.loadAverageAtEnd.join(', ')))
    add('recorded at', esc(m.takenAt))
  }
  const timingRows = timings ? table(['phase', 'wall seconds'], Object.entries(timings).map(([k, v]) => [esc(k), num(v, 1)]), { numeric: [1] }) : ''
  return `<section id="machine"><h2>Machine and timing</h2>
${m ? `<p>${esc(label)}</p>${table(['', ''], rows)}` : ''}
${timingRows}
${extra}
<p class="note">This report was generated ${esc(new Date().toISOString())} on ${esc(now.cpuModel)} (${now.cpus} cores), Node.js ${esc(now.node)}, engine features <code>${esc(JSON.stringify(now.cpuFeatures))}</code>.</p>
</section>`
}

function page(title: string, subtitle: string, nav: [string, string][], body: string): string {
  return `<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="generator" content="kana-native report">
<title>${esc(title)}</title>
<style>${CSS}</style></head>
<body><main>
<header><h1>${esc(title)}</h1><p class="sub">${subtitle}</p>
<nav><ol>${nav.map(([id, label]) => `<li><a href="#${id}">${esc(label)}</a></li>`).join('')}</ol></nav></header>
${body}
</main></body></html>
`
}

// ---------------------------------------------------------------------------------------------
// Experiment directory

const SH_EXPLANATION = `Successive halving: every candidate trains for a few epochs (the first rung); only the best
1/η by validation loss continue to the next rung (η times as many epochs), and so on until the
last survivors reach the full budget. Trials are resumed, not retrained; each also keeps its own
early stopping. Weak configurations are dropped after a few epochs, so most of the time goes to
the promising ones. Selection is by the lowest validation loss of any trial; the test split is
not read until every selection is over.`

async function experimentReport(dir: string, exp: any): Promise<{ html: string; title: string }> {
  const d: DataSummary = exp.data
  const names: string[] = d.classNames
  const models: any[] = exp.models ?? []
  const parts: string[] = []
  const nav: [string, string][] = [['data', 'Data set'], ['comparison', 'Comparison'], ['curves', 'Curves'], ['confusion', 'Confusion matrices']]

  parts.push(dataSection(d, (await picture(dir, ['class-distribution'], 'samples per class', 'Samples per class (all splits)')) + (await picture(dir, ['samples'], 'training samples with their class names', 'Training samples'))))

  // comparison table
  const rows = (exp.table ?? []).map((r: any) => [
    `<b>${esc(r.model)}</b>`, pct(r.testAccuracy), num(r.testLoss), pct(r.balancedAccuracy), pct(r.macroF1), esc(r.techniques), esc(r.notes), num(r.seconds, 1),
  ])
  parts.push(`<section id="comparison"><h2>Comparison</h2>
<p>Test-set metrics of each model (the test split was read once per model, after every selection). Also in <code>comparison.md</code>, <code>comparison.csv</code>.</p>
${table(['model', 'test accuracy', 'test loss', 'balanced accuracy', 'macro-F1', 'techniques', 'notes', 'training s'], rows, { numeric: [1, 2, 3, 4, 7], id: 'comparison-table' })}
${models.length ? table(['model', 'engine', 'layers', 'parameters', 'epochs', 'best epoch', 'weights of epoch', 'stopped by', 'val accuracy', 'val loss'], models.map((m) => [
    esc(m.id), esc(m.engine), `<code>[${esc(m.layers.join(','))}]</code>`, int(m.parameters), esc(m.epochs), esc(m.bestEpoch), esc(m.weightsEpoch), esc(m.stoppedBy), pct(m.validation?.accuracy), num(m.validation?.loss),
  ]), { numeric: [3, 4, 5, 6, 8, 9] }) : ''}
</section>`)

  // curves
  const perModel: string[] = []
  for (const m of models) perModel.push(await picture(dir, [m.dir, 'curves'], `${m.id} training curves`))
  parts.push(`<section id="curves"><h2>Curves</h2>
${await picture(dir, ['curves'], 'validation loss of every model', 'Validation loss per epoch, every model on one chart')}
${existsSync(inside(dir, ['curves-zoom.svg'])) || existsSync(inside(dir, ['curves-zoom.png'])) ? await picture(dir, ['curves-zoom'], 'validation loss, early epochs', 'The same, cut to the epochs the shorter runs have') : ''}
${await picture(dir, ['curves-accuracy'], 'validation accuracy of every model', 'Validation accuracy per epoch')}
<h3>Each model: training and validation</h3>
<div class="grid">${perModel.join('\n')}</div>
</section>`)

  // confusion
  const conf: string[] = []
  for (const m of models) {
    const metrics = await readJson(dir, [m.dir, 'metrics.json'])
    conf.push(`<div><h3>${esc(m.id)}</h3>${await picture(dir, [m.dir, 'confusion'], `${m.id} test confusion matrix`)}
<details><summary>${esc(m.id)}: per-class precision, recall and F1 on the test split</summary>${perClassTable(metrics?.test?.perClass, names)}</details></div>`)
  }
  parts.push(`<section id="confusion"><h2>Confusion matrices (test split)</h2>
<p>Rows are the true class, columns the predicted one; class names as in the class map: ${names.map((n) => `<span class="classname">${esc(n)}</span>`).join(' ')}.</p>
<div class="grid">${conf.join('\n')}</div></section>`)

  // search
  const searchParts: string[] = []
  for (const [key, label, sub] of [['search', 'Hyper-parameter search (M1)', 'search'], ['architecture', 'Architecture search (M3)', 'architecture'], ['m5', 'Modern candidates (M5): each trained to its end, scored by the validation loss of the weights it keeps', 'M5-candidates']] as const) {
    const s = exp[key]
    if (!s) continue
    const trials: any[] = (await readJson(dir, [sub, 'trials.json'])) ?? []
    const sorted = [...trials].sort((a, b) => (Number(a.valLoss) || Infinity) - (Number(b.valLoss) || Infinity))
    searchParts.push(`<h3 id="${key}-trials">${esc(label)}</h3>
<p>${esc(s.mode)} search, ${esc(s.trials)} trials; rungs at ${esc(Array.isArray(s.rungs) ? s.rungs.join(' / ') : s.rungs)} epochs; ${esc(s.epochsTrained)} epochs trained in all (at most ${esc(s.epochsWithoutHalving)} without halving); ${esc(s.concurrency)} trial(s) at a time × ${esc(s.threads)} engine thread(s); ${num(s.seconds, 1)} s.
Selected: trial ${esc(s.bestId)}, best validation loss ${num(s.best?.valLoss)} (accuracy ${pct(s.best?.valAccuracy)}) at epoch ${esc(s.best?.bestEpoch)}. Files: <code>${sub}/trials.csv</code>, <code>${sub}/trials.json</code>.</p>
${s.files?.plot ? await picture(dir, [sub, 'lr-effect'], 'validation loss against learning rate, per optimizer', 'The most important effect: learning rate, per optimizer (hollow points were stopped by successive halving)') : ''}
${table(['rank', 'trial', 'optimizer', 'lr', 'batch', 'hidden', 'L2', 'schedule', 'patience', 'epochs', 'best epoch', 'val loss', 'val acc', 'stopped by', 'seconds'], sorted.map((t, i) => [
      String(i + 1), `${esc(t.id)}${t.selected ? ' ✓' : ''}`, esc(t.optimizer), esc(Number(Number(t.lr).toPrecision(3))), t.optimizer === 'gd' ? '—' : esc(t.batchSize), esc(t.hidden), esc(t.l2), esc(t.schedule), esc(t.patience),
      esc(t.epochs), esc(t.bestEpoch), num(Number(t.valLoss)), pct(Number(t.valAccuracy)), esc(t.stoppedBy), num(t.seconds, 1),
    ]), { numeric: [0, 3, 4, 6, 8, 9, 10, 11, 12, 14], rowClass: (i) => (sorted[i].selected ? 'selected' : ''), id: `${key}-table` })}`)
  }
  if (searchParts.length) {
    nav.push(['search', 'Search'])
    parts.push(`<section id="search"><h2>Search</h2><p>${esc(SH_EXPLANATION)}</p>${searchParts.join('\n')}</section>`)
  }

  // noise
  const nz = exp.noise
  if (nz && Array.isArray(nz.kinds) && Array.isArray(nz.models)) {
    nav.push(['noise', 'Input noise'])
    const cols: { kind: string; level: number }[] = nz.kinds.flatMap((k: any) => (Array.isArray(k.levels) ? k.levels : []).filter((x: unknown) => x !== 0).map((x: number) => ({ kind: k.kind, level: x })))
    const acc = (m: any, kind: string, level: number) => pct((Array.isArray(m.byKind) ? m.byKind : []).find((b: any) => b.kind === kind)?.rows?.find((r: any) => r.level === level)?.accuracy)
    const pics: string[] = []
    for (const k of nz.kinds) pics.push(await picture(dir, ['noise', k.kind], `test accuracy under ${k.kind} noise, one line per model`))
    parts.push(`<section id="noise"><h2>Robustness under input noise (test split)</h2>
<p>Every model on the same ${int(nz.samples)} test images, corrupted by the same seeded noise (seed ${esc(nz.seed)}), the clean images first: Gaussian σ in pixel units (0..255), salt and pepper as the share of pixels set to 0 or 255, occlusion as the side of a black square at a random place. Also in <code>noise/robustness.csv</code>, <code>noise/robustness.md</code>.</p>
${table(['model', 'clean', ...cols.map((c) => `${c.kind} ${c.level}`)], nz.models.map((m: any) => [`<b>${esc(m.model)}</b>${m.note ? ` <span class="note">(${esc(m.note)})</span>` : ''}`, acc(m, nz.kinds[0]?.kind, 0), ...cols.map((c) => acc(m, c.kind, c.level))]), { numeric: cols.map((_, i) => i + 1).concat(cols.length + 1), id: 'noise-table' })}
<div class="grid">${pics.join('\n')}</div>
</section>`)
  }

  // agreement
  const a = exp.agreement
  if (a) {
    nav.push(['agreement', 'M1 against M2'])
    const verdict = (ok: boolean) => (ok ? '<span class="pass">pass</span>' : '<span class="fail">FAIL</span>')
    const sens = a.sensitivity
    // experiments written before the re-synchronised epochs existed have none
    const rs = a.resync ?? { epochs: [], trainLossRelDiff: [], maxTrainLossRelDiff: NaN, maxAbsWeightDiff: [NaN], pass: false }
    const e10 = Math.min(10, a.epochsCompared)
    const conclusion = a.verdict === 'agree'
      ? '<p class="pass">The engine and the reference agree within the study\'s criteria.</p>'
      : a.verdict === 'float32-sensitivity'
        ? `<p><b>The free-running training losses drift apart by more than 1%, and rounding explains it:</b> the engine computes in float32, the reference in float64, so they differ in every rounding from the first step, and how far such differences carry from epoch to epoch depends on the configuration. Two measurements separate the implementations from that growth. <i>Re-synchronised:</i> the reference trained each of epochs 1–${esc(rs.epochs.length)} again from the engine's exact state at the epoch's start (weights, Adam's step count and moments); the training losses of the same epoch agree within ${relPct(rs.maxTrainLossRelDiff)}, and the weights at its end within ${esc(Math.max(...rs.maxAbsWeightDiff).toExponential(1))}. <i>Yardstick:</i> ${esc(sens.twins)} twins of the engine ran the same batches with every weight jittered by about one float32 rounding (relative 2<sup>−24</sup>) at the start and after every step; they drift from the engine by up to ${relPct(sens.maxTrainLossRelDiffFirst10)} in training loss over epochs 1–${esc(e10)} and ${num(sens.testAccuracyDiffPoints, 2)} points in test accuracy, and the reference stays within ${esc(sens.factor)}× of that drift at every epoch (accuracy within ${esc(sens.factorAccuracy)}×, or 0.5 points). This configuration amplifies rounding (chaotic training); nothing here points to a difference between the implementations.</p>`
        : '<p class="fail">The engine and the reference disagree by more than rounding explains: this points to a difference between the implementations.</p>'
    parts.push(`<section id="agreement"><h2>M1 (engine) against M2 (reference)</h2>
<p>${esc(a.method)}. The reference ran ${esc(a.epochsCompared)} of ${esc(a.epochsConfigured)} epochs in ${num(a.referenceSeconds, 0)} s (budget ${esc(a.budgetSeconds)} s${a.stoppedBy === 'budget' ? ', which ended it' : `; it ended by ${esc(String(a.stoppedBy).replace('-', ' '))}`})${a.referenceOnWorker ? ' on a worker thread' : ''}; the engine ran the same epochs${a.prefixMatchesM1 ? ', repeating M1\'s epochs bit for bit' : ''}.</p>
${table(['check', 'criterion', 'measured', '', 'engine vs its jittered twins (yardstick)'], [
      [`training loss, epochs 1–${esc(e10)}`, `within ${esc(a.criteria.trainLossRelFirst10 * 100)}% relative`, `largest difference ${relPct(a.maxTrainLossRelDiffFirst10)}`, verdict(a.pass.trainLoss), relPct(sens.maxTrainLossRelDiffFirst10)],
      [`test accuracy at epoch ${esc(a.atEpoch)} (M2's final weights)`, `within ${esc(a.criteria.testAccuracyPoints)} points`, `engine ${pct(a.engine.testAccuracy)}, reference ${pct(a.reference.testAccuracy)}: Δ ${num(a.testAccuracyDiffPoints, 2)} points`, verdict(a.pass.testAccuracy), `${(sens.testAccuracy as number[]).map((x) => pct(x)).join(', ')}: Δ up to ${num(sens.testAccuracyDiffPoints, 2)} points`],
      [`training loss, each of epochs 1–${esc(rs.epochs.length)} from the engine's state at its start`, `within ${esc(a.criteria.trainLossRelFirst10 * 100)}% relative`, rs.epochs.length ? `largest difference ${relPct(rs.maxTrainLossRelDiff)}` : 'not run', verdict(rs.pass), '—'],
      ['largest weight difference at the end', '(information)', esc(Number(a.maxAbsWeightDiff).toExponential(2)), '', ''],
    ])}
${conclusion}
${table(['epoch', 'engine training loss', 'reference training loss', 'relative difference', 'validation-loss difference', 'farthest jittered twin', 're-synchronised epoch'], a.engine.trainLoss.slice(0, a.epochsCompared).map((l: number, i: number) => [
      String(i + 1), num(l, 6), num(a.reference.trainLoss[i], 6), relPct(a.trainLossRelDiff[i]), relPct(a.valLossRelDiff[i]), relPct(sens.trainLossRelDiff[i]),
      rs.epochs.indexOf(i + 1) >= 0 ? relPct(rs.trainLossRelDiff[rs.epochs.indexOf(i + 1)]) : '—',
    ]), { numeric: [0, 1, 2, 3, 4, 5, 6] })}
${await picture(dir, ['agreement'], 'training loss of engine and reference per epoch, and their relative differences: free-running, re-synchronised each epoch, and the engine against its jittered twins')}
</section>`)
  }

  // reproduce
  nav.push(['reproduce', 'Reproduce'], ['machine', 'Machine and timing'])
  const cmd = Array.isArray(exp.command) ? exp.command : undefined
  const modelConfigs = models.map((m) => `<details><summary>${esc(m.id)}: ${esc(m.techniques)}</summary><pre><code>${esc(JSON.stringify({ layers: m.layers, ...m.config }, null, 2))}</code></pre></details>`).join('\n')
  parts.push(`<section id="reproduce"><h2>Reproduce</h2>
<p>Every model is fixed by the seed (split, initial weights, mini-batch order) and the configuration below, saved as <code>experiment-config.json</code> in this directory.</p>
<pre><code>${cmd ? `# as it was run\n${esc(shellQuote(cmd))}\n\n` : ''}# again, from the resolved configuration (same seed, data and settings)
npx kana-native experiment --config ${esc(join(dir, 'experiment-config.json'))} --out runs/again
npx kana-native report runs/again</code></pre>
<details><summary>experiment-config.json</summary><pre><code>${esc(JSON.stringify(exp.config, null, 2))}</code></pre></details>
${modelConfigs}
<p>Test-split evaluations, in order: ${(exp.testEvaluations ?? []).map((e: any) => esc(e.model)).join('; ')}.</p>
</section>`)

  const t = exp.timings ?? {}
  parts.push(machineSection(exp.machine, 'Recorded when the experiment started:', t, `<p>Total wall time of the experiment: <b>${num(exp.seconds, 1)} s</b> (${num(exp.seconds / 60, 1)} min).</p>`))

  const title = 'kana-native experiment'
  const sub = `${esc(dir)} · seed ${esc(exp.config?.seed)} · ${esc(exp.createdAt)} · ${models.length} models · ${num(exp.seconds / 60, 1)} min`
  return { html: page(title, sub, nav, parts.join('\n')), title }
}

// ---------------------------------------------------------------------------------------------
// A single train run directory

async function runReport(dir: string, config: any, metrics: any): Promise<{ html: string; title: string }> {
  const names: string[] = config.classNames ?? []
  const ds = config.data ?? {}
  const d: DataSummary = {
    source: Object.fromEntries(Object.entries(ds).filter(([k]) => !['samples', 'features', 'classes'].includes(k))),
    features: ds.features, classes: ds.classes ?? names.length, classNames: names,
    samples: ds.samples ?? { train: metrics.train?.samples ?? 0, validation: metrics.validation?.samples ?? 0, test: metrics.test?.samples ?? 0 },
  }
  const parts: string[] = []
  parts.push(dataSection(d, (await picture(dir, ['class-distribution'], 'samples per class', 'Samples per class')) + (await picture(dir, ['samples'], 'training samples with their class names', 'Training samples'))))
  const layers = config.layers ? `[${config.layers.join(',')}]` : ''
  const tech = `${layers} ${config.optimizer} lr ${config.lr}${config.optimizer !== 'gd' ? `, batch ${config.batchSize}` : ''}, L2 ${config.l2}, ${config.schedule} schedule, ${config.earlyStopping ? `early stopping (patience ${config.patience})` : 'no early stopping'}${config.restoreBest ? ', best weights restored' : ''}`
  parts.push(`<section id="comparison"><h2>Metrics</h2>
<p>One training run: ${esc(tech)}. Stopped by ${esc(metrics.stopReason)} after ${esc(metrics.epochs)} epochs; weights of epoch ${esc(metrics.weightsEpoch)} (best validation loss at epoch ${esc(metrics.bestEpoch)}); ${num(metrics.seconds, 1)} s.</p>
${table(['split', 'accuracy', 'loss', 'balanced accuracy', 'macro-F1', 'samples'], (['train', 'validation', 'test'] as const).filter((k) => metrics[k]).map((k) => [k, pct(metrics[k].accuracy), num(metrics[k].loss), pct(metrics[k].balancedAccuracy), pct(metrics[k].macroF1), esc(metrics[k].samples)]), { numeric: [1, 2, 3, 4, 5], id: 'comparison-table' })}
</section>`)
  parts.push(`<section id="curves"><h2>Curves</h2>${await picture(dir, ['curves'], 'training and validation curves')}</section>`)
  parts.push(`<section id="confusion"><h2>Confusion matrix (test split)</h2>${await picture(dir, ['confusion'], 'test confusion matrix')}
<h3>Per class</h3>${perClassTable(metrics.test?.perClass, names)}</section>`)
  const cmd = Array.isArray(config.command) ? config.command : undefined
  parts.push(`<section id="reproduce"><h2>Reproduce</h2>
<pre><code>${cmd ? esc(shellQuote(cmd)) : '# the command was not recorded'}</code></pre>
<p>The seed (${esc(config.seed)}) fixes the split, the initial weights and the shuffling.</p>
<details><summary>config.json</summary><pre><code>${esc(JSON.stringify(config, null, 2))}</code></pre></details></section>`)
  const history: { seconds: number }[] = (await readJson(dir, ['history.json'])) ?? []
  const timing: Record<string, number> = { training: metrics.seconds }
  if (history.length) timing['mean epoch (training + validation)'] = history.reduce((a, h) => a + h.seconds, 0) / history.length
  parts.push(machineSection(machineFacts(), 'A train run does not record its machine; these are the facts of the machine that generated this report:', timing,
    `<p>The run's configuration records Node.js ${esc(config.node ?? '?')}${config.createdAt ? `, started ${esc(config.createdAt)}` : ''}. Per-epoch seconds are in <code>history.csv</code>.</p>`))
  const nav: [string, string][] = [['data', 'Data set'], ['comparison', 'Metrics'], ['curves', 'Curves'], ['confusion', 'Confusion matrix'], ['reproduce', 'Reproduce'], ['machine', 'Machine and timing']]
  return { html: page('kana-native training run', `${esc(dir)} · seed ${esc(config.seed)}`, nav, parts.join('\n')), title: 'kana-native training run' }
}

function shellQuote(argv: string[]): string {
  return argv.map((a, i) => {
    const s = i === 0 && /kana-native(\.js)?$/.test(a) ? 'kana-native' : a
    return /^[\w@%+=:,./-]+$/.test(s) ? s : `'${s.replace(/'/g, `'\\''`)}'`
  }).join(' ')
}

/** The report's HTML for a directory (experiment or train run). */
export async function buildReport(dirIn: string): Promise<string> {
  const dir = resolve(dirIn)
  if (!existsSync(dir)) throw new ReportError(`${dirIn}: no such directory`)
  const exp = await readJson(dir, ['experiment.json'])
  if (exp) return (await experimentReport(dir, exp)).html
  const config = await readJson(dir, ['config.json'])
  const metrics = await readJson(dir, ['metrics.json'])
  if (config && metrics) return (await runReport(dir, config, metrics)).html
  throw new ReportError(`${dirIn} is neither an experiment directory (experiment.json) nor a finished train run directory (config.json and metrics.json)`)
}

/** Writes the report (default DIR/report.html) and returns its path. */
export async function writeReport(dir: string, opts: ReportOptions = {}): Promise<string> {
  const html = await buildReport(dir)
  const out = resolve(opts.out ?? join(dir, 'report.html'))
  await writeFileAtomic(out, html)
  return out
}
