// The comparison table: one row per model, on the test split, as comparison.md/.csv/.json and
// study.md hold it (and the CLI prints it at the end).
import { noiseMarkdown, type NoiseSummary } from './robustness'
import { archLabel } from './describe'
import { pct } from '../output/format'
import type { ModelResult, TableRow } from './records'

/** Each model's row: its test metrics, and its architecture in front of its techniques. */
export function comparisonTable(results: ModelResult[]): TableRow[] {
  return results.map((r) => ({
    model: r.id, testAccuracy: r.metrics.test.accuracy, testLoss: r.metrics.test.loss, balancedAccuracy: r.metrics.test.balancedAccuracy,
    macroF1: r.metrics.test.macroF1, techniques: `${archLabel(r.layers)} ${r.techniques}`, notes: r.notes, seconds: r.seconds,
  }))
}

const TABLE_HEAD = ['model', 'test accuracy', 'test loss', 'balanced accuracy', 'macro-F1', 'techniques', 'notes', 'training s']

export function comparisonMarkdown(rows: TableRow[]): string {
  const esc = (s: string) => s.replace(/\|/g, '\\|')
  return [
    `| ${TABLE_HEAD.join(' | ')} |`,
    `|---|---:|---:|---:|---:|---|---|---:|`,
    ...rows.map((r) => `| ${r.model} | ${pct(r.testAccuracy)} | ${r.testLoss.toFixed(4)} | ${pct(r.balancedAccuracy)} | ${pct(r.macroF1)} | ${esc(r.techniques)} | ${esc(r.notes)} | ${r.seconds.toFixed(1)} |`),
  ].join('\n') + '\n'
}

/** study.md: the comparison table and, when it ran, the noise table. */
export function studyMarkdown(rows: TableRow[], noise?: NoiseSummary): string {
  const parts = ['# The study\n', '## Comparison (test split)\n', comparisonMarkdown(rows)]
  if (noise) {
    parts.push('\n## Robustness: test accuracy under input noise\n', `Every model on the same ${noise.samples} test images, corrupted with the same seeded noise (seed ${noise.seed}; pixel units 0..255; README "Ensembles and robustness under input noise").\n`, noiseMarkdown(noise))
  }
  return parts.join('\n')
}

export function comparisonCsv(rows: TableRow[]): string {
  const cell = (v: unknown) => {
    const s = String(v)
    return /[",\r\n]/.test(s) ? `"${s.replace(/"/g, '""')}"` : s
  }
  const cols = ['model', 'testAccuracy', 'testLoss', 'balancedAccuracy', 'macroF1', 'techniques', 'notes', 'seconds'] as const
  return [cols.join(','), ...rows.map((r) => cols.map((c) => cell(r[c])).join(','))].join('\n') + '\n'
}
