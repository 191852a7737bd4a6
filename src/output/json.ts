// JSON text that keeps non-finite numbers: a diverged trial's loss is NaN or ±Infinity, which JSON
// cannot hold (JSON.stringify would write null), so they are written as the strings "NaN",
// "Infinity", "-Infinity" and read back as numbers. One codec for the checkpoints
// (training/checkpoint.ts), the queue's snapshot blobs (queue/payload.ts) and the study's JSON
// files (experiment/records.ts), kept in output/: the lowest folder that writes files, below
// training, queue and experiment alike.

const NON_FINITE: Record<string, number> = { NaN: NaN, Infinity: Infinity, '-Infinity': -Infinity }

/** `JSON.stringify(v, null, space)`, but with non-finite numbers as their strings. */
export const stringifyNonFinite = (v: unknown, space?: number): string =>
  JSON.stringify(v, (_, x) => (typeof x === 'number' && !Number.isFinite(x) ? String(x) : x), space)

/** `JSON.parse`, turning "NaN", "Infinity", "-Infinity" back into numbers. Throws as JSON.parse does. */
export const parseNonFinite = (text: string): unknown =>
  // own keys only: a string such as "toString" or "__proto__" stays a string
  JSON.parse(text, (_, x) => (typeof x === 'string' && Object.hasOwn(NON_FINITE, x) ? NON_FINITE[x] : x))
