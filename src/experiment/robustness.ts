// The study's noise table (issue F2): every model evaluated on the test split under input noise
// (output/noise.ts: the same seeded corruption for every model, the clean level first), after
// selection like every other test evaluation. Files: noise/robustness.{csv,json,md} and one chart
// per kind of noise (accuracy against level, a line per model).
import { join } from 'node:path'
import { evaluateNoise, type Evaluates, type NoiseKind, type NoiseRow } from '../output/noise'
import { makeOutputDir, writeFileAtomic } from '../output/atomic'
import { writeRendered } from '../output/render'
import { pct } from '../output/format'
import { noiseChart } from './plots'
import type { NoiseLevels } from './config'

export interface NoiseSummary {
  /** The seed of the corruption (the study's). */
  seed: number
  samples: number
  /** The kinds run, in this order, with their levels as configured (the clean level comes first in each model's rows). */
  kinds: { kind: NoiseKind; levels: number[] }[]
  models: { model: string; note?: string; byKind: { kind: NoiseKind; rows: NoiseRow[] }[] }[]
}

/** Each model under each kind of `levels`, seeded; models are evaluated in the order given. */
export async function robustness(
  models: { model: string; net: Evaluates; note?: string }[], images: Uint8Array, labels: Int32Array, levels: NoiseLevels, seed: number,
): Promise<NoiseSummary> {
  const kinds = (Object.entries(levels) as [NoiseKind, number[]][]).map(([kind, l]) => ({ kind, levels: [...l] }))
  const out: NoiseSummary = { seed, samples: labels.length, kinds, models: [] }
  for (const m of models) {
    const byKind: NoiseSummary['models'][number]['byKind'] = []
    for (const k of kinds) byKind.push({ kind: k.kind, rows: (await evaluateNoise(m.net, images, labels, k, seed)).rows })
    out.models.push({ model: m.model, note: m.note, byKind })
  }
  return out
}

const UNIT: Record<NoiseKind, (x: number) => string> = {
  gaussian: (x) => `σ ${x}`,
  'salt-pepper': (x) => `p ${x}`,
  occlusion: (x) => `${x}×${x}`,
}

/** One row per model: the clean accuracy, then every kind's levels. */
export function noiseMarkdown(s: NoiseSummary): string {
  const cols = s.kinds.flatMap((k) => k.levels.filter((x) => x !== 0).map((x) => ({ kind: k.kind, level: x })))
  const head = ['model', 'clean', ...cols.map((c) => `${c.kind} ${UNIT[c.kind](c.level)}`)]
  const rows = s.models.map((m) => {
    const acc = (kind: NoiseKind, level: number) => {
      const r = m.byKind.find((b) => b.kind === kind)?.rows.find((x) => x.level === level)
      return r ? pct(r.accuracy) : '—'
    }
    return [m.model, acc(s.kinds[0].kind, 0), ...cols.map((c) => acc(c.kind, c.level))]
  })
  return [`| ${head.join(' | ')} |`, `|---|${head.slice(1).map(() => '---:').join('|')}|`, ...rows.map((r) => `| ${r.join(' | ')} |`)].join('\n') + '\n'
}

export function noiseSummaryCsv(s: NoiseSummary): string {
  const lines = ['model,kind,level,accuracy,loss']
  for (const m of s.models) for (const b of m.byKind) for (const r of b.rows) lines.push(`${m.model},${b.kind},${r.level},${r.accuracy},${r.loss}`)
  return lines.join('\n') + '\n'
}

/** Writes DIR/noise/robustness.{json,csv,md} and DIR/noise/<kind>.{svg,png}. */
export async function writeRobustness(dir: string, s: NoiseSummary): Promise<void> {
  const d = join(dir, 'noise')
  await makeOutputDir(d)
  await writeFileAtomic(join(d, 'robustness.json'), JSON.stringify(s, null, 2) + '\n')
  await writeFileAtomic(join(d, 'robustness.csv'), noiseSummaryCsv(s))
  await writeFileAtomic(join(d, 'robustness.md'), noiseMarkdown(s))
  for (const k of s.kinds) {
    const rows = s.models.flatMap((m) => (m.byKind.find((b) => b.kind === k.kind)?.rows ?? []).map((r) => ({ model: m.model, level: r.level, accuracy: r.accuracy })))
    await writeRendered(join(d, k.kind), await noiseChart(k.kind, rows, { samples: s.samples, seed: s.seed }))
  }
}
