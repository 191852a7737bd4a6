// Hostile CSV and JSON configuration: class maps and experiment configs get a specific error
// or a valid result — never an internal TypeError, never a hang.
import test from 'ava'
import fc from 'fast-check'
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { parseClassmap } from '../src/data/classmap'
import { DataError } from '../src/data/readers'
import { readExperimentConfig, resolveExperiment } from '../src/experiment/experiment'
import { FIELD_NAMES, readTrainConfig, resolveModelConfig } from '../src/training/config'
import { decodeModel, ModelFileError } from '../src/output/model-file'
import { modelWithNames } from './helpers/crafted'

const k49 = join(__dirname, '..', '..', 'shared', 'data', 'k49', 'k49_classmap.csv')
const validMap = (() => {
  try {
    return readFileSync(k49, 'utf8')
  } catch {
    return 'index,codepoint,char\n0,U+304A,お\n1,U+304D,き\n2,U+3059,す\n'
  }
})()

/** An internal error is a JavaScript engine complaint, not one of ours. */
const internal = (e: unknown) => e instanceof TypeError && /Cannot read|is not a function|undefined|null/.test((e as Error).message)

test('class map CSV: random edits give a DataError naming the file, or a list of names', (t) => {
  let runs = 0
  fc.assert(
    fc.property(fc.array(fc.tuple(fc.nat(validMap.length), fc.nat(5), fc.string({ maxLength: 6 })), { maxLength: 6 }), (edits) => {
      runs++
      let text = validMap
      for (const [at, del, ins] of edits) text = text.slice(0, at) + ins + text.slice(at + del)
      try {
        const names = parseClassmap(text, 'fuzz.csv')
        return Array.isArray(names) && names.every((n) => typeof n === 'string')
      } catch (e) {
        return e instanceof DataError && (e as Error).message.includes('fuzz.csv')
      }
    }),
    { seed: 0x6b61, numRuns: 2000 },
  )
  t.log(`${runs} mutated class maps`)
  t.is(runs, 2000)
})

test('experiment config JSON: random values give an Error with a message naming the problem, or a resolved config', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'kana-config-fuzz-'))
  const keys = ['seed', 'split', 'threads', 'models', 'M0', 'M4', 'M5', 'search', 'architecture', 'reference', 'noise', 'data']
  const value = fc.oneof(fc.integer(), fc.double(), fc.string({ maxLength: 4 }), fc.boolean(), fc.constant(null), fc.array(fc.integer(), { maxLength: 3 }), fc.dictionary(fc.constantFrom('epochs', 'trials', 'lr', 'hidden', 'train', 'budget', 'kind'), fc.oneof(fc.integer(), fc.double(), fc.string({ maxLength: 3 }), fc.constant(null)), { maxKeys: 3 }))
  let runs = 0
  const bad: string[] = []
  await fc.assert(
    fc.asyncProperty(fc.oneof(fc.dictionary(fc.constantFrom(...keys), value, { maxKeys: 4 }), fc.string({ maxLength: 20 })), async (cfg) => {
      runs++
      const path = join(dir, 'exp.json')
      writeFileSync(path, typeof cfg === 'string' ? cfg : JSON.stringify(cfg))
      try {
        const c = await readExperimentConfig(path)
        resolveExperiment({ ...c, images: 'X.npy', labels: 'y.npy' } as never)
        return true
      } catch (e) {
        if (internal(e) || !(e instanceof Error) || !e.message) {
          bad.push(`${JSON.stringify(cfg)} → ${(e as Error).stack}`)
          return false
        }
        return true
      }
    }),
    { seed: 0x6b62, numRuns: 1500 },
  )
  t.log(`${runs} random configs`)
  t.deepEqual(bad, [])
})

/** Values near and beyond every field's range, and of the wrong types. */
const fieldValue = fc.oneof(
  fc.integer({ min: -3, max: 600 }), fc.double({ noNaN: false }), fc.constantFrom(0, 1, -1, 0.5, 1e-3, 1e-9, 2 ** 60, 'adam', 'gd', 'linear', 'exponential', 'cosine', true, false, null, [], [0], [64], [64, 32], [1.5]),
  fc.array(fc.integer({ min: -2, max: 300 }), { maxLength: 3 }),
)
const modelDict = fc.dictionary(fc.constantFrom(...FIELD_NAMES, 'epoch', 'hiden'), fieldValue, { maxKeys: 5 })

test('train --config JSON and nested model settings: random values give a RangeError naming a setting, or a configuration that resolves', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'kana-train-config-fuzz-'))
  const runKeys = fc.dictionary(fc.constantFrom('images', 'labels', 'dataset', 'split', 'threads', 'checkpointEvery', 'cacheDir'), fc.oneof(fieldValue, fc.string({ maxLength: 4 }), fc.record({ train: fc.double(), validation: fc.double(), test: fc.double() })), { maxKeys: 2 })
  let runs = 0
  let resolved = 0
  const bad: string[] = []
  const named = new RegExp(`^(${[...FIELD_NAMES, 'images', 'labels', 'dataset', 'split', 'threads', 'checkpointEvery', 'cacheDir', 'unknown key'].join('|')})\\b`)
  await fc.assert(
    fc.asyncProperty(modelDict, runKeys, async (model, run) => {
      runs++
      const path = join(dir, 'train.json')
      writeFileSync(path, JSON.stringify({ ...model, ...run }))
      try {
        const c = await readTrainConfig(path)
        resolveModelConfig({ ...c, seed: c.seed ?? 1 })
        resolved++
        return true
      } catch (e) {
        const m = (e as Error).message?.replace(`${path}: `, '')
        if (!(e instanceof RangeError) || !named.test(m)) {
          bad.push(`${JSON.stringify({ ...model, ...run })} → ${(e as Error).stack}`)
          return false
        }
        return true
      }
    }),
    { seed: 0x6b63, numRuns: 1500 },
  )
  t.log(`${runs} random train configs, ${resolved} resolved`)
  t.deepEqual(bad, [])
  t.true(resolved > 0, 'some resolve')
})

test('experiment config JSON with model settings in M0, M4, search.base and M5: an error naming the place, or a resolved config', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'kana-config-fuzz-nested-'))
  let runs = 0
  const bad: string[] = []
  await fc.assert(
    fc.asyncProperty(fc.record({ M0: modelDict, M4: modelDict, search: fc.record({ base: modelDict, mode: fc.constantFrom('random', 'grid') }), M5: fc.record({ base: modelDict, candidates: fc.array(modelDict, { maxLength: 3 }) }, { requiredKeys: [] }) }, { requiredKeys: [] }), async (cfg) => {
      runs++
      const path = join(dir, 'exp.json')
      writeFileSync(path, JSON.stringify(cfg))
      try {
        resolveExperiment(await readExperimentConfig(path))
        return true
      } catch (e) {
        const m = (e as Error).message ?? ''
        if (internal(e) || !/(M0|M4|M5|search\.base)|grid has|lrMin|unknown key/.test(m)) {
          bad.push(`${JSON.stringify(cfg)} → ${(e as Error).stack}`)
          return false
        }
        return true
      }
    }),
    { seed: 0x6b64, numRuns: 800 },
  )
  t.log(`${runs} random nested configs`)
  t.deepEqual(bad, [])
})

// ---------------------------------------------------------------------------------------------
// Hostile strings (issue K): markup and control characters where numbers or class names belong

const hostile = fc.oneof(
  fc.constantFrom('<img src=x onerror=alert(1)>', '"><script>alert(1)</script>', '2', '1e3', ' 4', '0x10', 'Infinity', '__proto__', 'constructor', '\x1b[2J'),
  fc.string({ maxLength: 12 }),
)

test('hostile strings in an experiment config\'s counts (search/architecture concurrency and threads, …) are refused naming the setting', (t) => {
  const places: [string, string | undefined][] = [['threads', undefined], ['search', 'concurrency'], ['search', 'threads'], ['search', 'trials'], ['search', 'epochs'], ['architecture', 'concurrency'], ['architecture', 'threads'], ['reference', 'budgetSeconds'], ['seed', undefined]]
  let runs = 0
  fc.assert(
    fc.property(fc.constantFrom(...places), hostile, ([key, sub], s) => {
      runs++
      const cfg = sub ? { [key]: { [sub]: s } } : { [key]: s }
      try {
        resolveExperiment({ ...cfg, images: 'X.npy', labels: 'y.npy' } as never)
      } catch (e) {
        return e instanceof RangeError && e.message.includes(sub ?? key)
      }
      return false
    }),
    { seed: 0x6b4b, numRuns: 400 },
  )
  t.log(`${runs} hostile strings in counts, every one refused`)
  t.pass()
})

test('hostile class names: a class map row or a model file naming a control character is refused, any other name read back as it is', (t) => {
  const control = fc.constantFrom(...[0x00, 0x07, 0x08, 0x0a, 0x0d, 0x1b, 0x7f, 0x85, 0x9b, 0x2028, 0x2029, 0x202a, 0x202e, 0x2066, 0x2069].map((c) => String.fromCodePoint(c)))
  const name = fc.oneof(
    fc.string({ unit: 'grapheme', minLength: 1, maxLength: 6 }),
    fc.tuple(fc.string({ maxLength: 3 }), control, fc.string({ maxLength: 3 })).map(([a, c, b]) => a + c + b),
  )
  const counts = { csvRefused: 0, csvRead: 0, modelRefused: 0, modelRead: 0 }
  const forbidden = /[\p{Cc}\u2028\u2029\u202A-\u202E\u2066-\u2069]/u
  fc.assert(
    fc.property(fc.array(name, { minLength: 1, maxLength: 4 }), (names) => {
      const bad = names.some((n) => forbidden.test(n))
      // model file
      try {
        const got = decodeModel(modelWithNames(names)).meta.classNames
        if (bad || JSON.stringify(got) !== JSON.stringify(names)) return false
        counts.modelRead++
      } catch (e) {
        if (!(e instanceof ModelFileError) || !bad || e.code !== 'ECLASSNAMES') return false
        counts.modelRefused++
      }
      // class map: each name's first code point as a row
      const cps = names.map((n) => n.codePointAt(0)!)
      const csv = `index,codepoint,char\n${cps.map((cp, k) => `${k},U+${cp.toString(16).toUpperCase().padStart(4, '0')},${String.fromCodePoint(cp)}`).join('\n')}\n`
      const csvBad = cps.some((cp) => forbidden.test(String.fromCodePoint(cp)))
      try {
        parseClassmap(csv)
        if (csvBad) return false
        counts.csvRead++
      } catch (e) {
        if (!(e instanceof DataError)) return false
        // a refused printable name can only be a character the row format cannot hold (a space, a comma at the end…)
        if (!csvBad && cps.every((cp) => String.fromCodePoint(cp).trim() !== '')) return false
        counts.csvRefused++
      }
      return true
    }),
    { seed: 0x6b4c, numRuns: 600 },
  )
  t.log(`600 lists of hostile class names: ${JSON.stringify(counts)}`)
  t.true(counts.csvRefused > 0 && counts.modelRefused > 0 && counts.modelRead > 0)
})
