// The one JSON codec for non-finite numbers (output/json.ts), as the checkpoints, the queue's
// snapshot blobs and the study's files use it: NaN and ±Infinity survive as numbers, and strings
// that name inherited properties ("toString", "__proto__") stay strings.
import test from 'ava'
import { parseNonFinite, stringifyNonFinite } from '../src/output/json'
import { decodeSnapshotBlob, encodeSnapshotBlob } from '../src/queue/payload'
import { resolveModelConfig, Trial } from '../src/training/trial'
import { trialData } from '../src/training/sources'
import { miniData } from './experiment-fixtures'

const HOSTILE = ['toString', 'valueOf', 'constructor', '__proto__', 'hasOwnProperty', 'nan', 'NaN ', 'infinity', '+Infinity']

test('non-finite numbers are written as "NaN", "Infinity", "-Infinity" and read back as numbers', (t) => {
  const v = { loss: NaN, range: [Infinity, -Infinity, 0.1 + 0.2, -0], name: 'M0', nested: [{ x: null }] }
  t.is(stringifyNonFinite(v), '{"loss":"NaN","range":["Infinity","-Infinity",0.30000000000000004,0],"name":"M0","nested":[{"x":null}]}')
  // the layout is JSON.stringify's for the same indentation
  t.is(stringifyNonFinite({ a: [1, { b: 2 }] }, 2), JSON.stringify({ a: [1, { b: 2 }] }, null, 2))
  t.is(stringifyNonFinite({ a: [1] }, 1), '{\n "a": [\n  1\n ]\n}')
  t.deepEqual(parseNonFinite(stringifyNonFinite(v)), { ...v, range: [Infinity, -Infinity, 0.30000000000000004, 0] })
  t.true(Number.isNaN((parseNonFinite('["NaN"]') as number[])[0]))
})

test('strings naming inherited properties, or nearly spelling a non-finite number, stay strings', (t) => {
  t.deepEqual(parseNonFinite(JSON.stringify(HOSTILE)), HOSTILE)
  t.deepEqual(parseNonFinite('{"a":"toString","b":["__proto__","constructor"]}'), { a: 'toString', b: ['__proto__', 'constructor'] })
})

test('a trial snapshot blob keeps hostile strings and non-finite numbers in its record', async (t) => {
  const config = resolveModelConfig({ hidden: [8], optimizer: 'adam', lr: 1e-3, batchSize: 32, epochs: 2, seed: 3 })
  const d = await miniData()
  const td = trialData({ images: d.images.subarray(0, 400 * 784), labels: d.labels.subarray(0, 400) }, { images: d.images.subarray(400 * 784), labels: d.labels.subarray(400) }, 784, 10)
  const trial = new Trial(config, td, { threads: 1 })
  try {
    const s = { ...trial.snapshot(), divergence: 'constructor', extra: { note: 'toString', words: HOSTILE, loss: -Infinity } }
    const back = decodeSnapshotBlob(encodeSnapshotBlob(s), [784, 8, 10], 'the test blob')
    t.is(back.divergence, 'constructor')
    t.deepEqual(back.extra, { note: 'toString', words: HOSTILE, loss: -Infinity })
  } finally {
    trial.release()
  }
})
