// CSV text of the posterior probabilities a model hands over (the course's submission format).

/** A header cell: quoted only when it must be (commas, quotes, line breaks). */
function cell(s: string): string {
  return /[",\r\n]/.test(s) ? `"${s.replace(/"/g, '""')}"` : s
}

export interface ProbabilityCsvOptions {
  /** Column names; default `Clase_0 … Clase_{K-1}` (the course's convention). */
  columns?: string[]
  /** Append an `argmax` column with the most probable class index. */
  argmax?: boolean
}

/**
 * One row per sample, one column per class. Each row is renormalised in double precision and
 * printed with 10 significant digits, so it sums to 1 within 1e-9 (float32 sums drift by ~1e-7).
 */
export function probabilitiesCsv(probs: Float32Array, classes: number, opts: ProbabilityCsvOptions = {}): string {
  const columns = opts.columns ?? Array.from({ length: classes }, (_, k) => `Clase_${k}`)
  if (columns.length !== classes) throw new RangeError(`columns names ${columns.length} classes but the model has ${classes}`)
  if (probs.length % classes !== 0) throw new RangeError(`${probs.length} probabilities do not make rows of ${classes}`)
  const out: string[] = [[...columns.map(cell), ...(opts.argmax ? ['argmax'] : [])].join(',')]
  const row = new Array<string>(classes)
  for (let r = 0; r < probs.length / classes; r++) {
    let sum = 0
    let best = 0
    for (let k = 0; k < classes; k++) {
      const p = probs[r * classes + k]
      sum += p
      if (p > probs[r * classes + best]) best = k
    }
    for (let k = 0; k < classes; k++) row[k] = Number((probs[r * classes + k] / sum).toPrecision(10)).toString()
    out.push(opts.argmax ? row.join(',') + ',' + best : row.join(','))
  }
  return out.join('\n') + '\n'
}
