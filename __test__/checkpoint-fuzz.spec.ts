// Checkpoints under mutation. A resumed run trusts its checkpoint, so every change to one must be
// refused with a CheckpointError naming the problem — never another exception, never a silently
// different run. Byte damage anywhere (the index or a tensor file: flips, truncation, appended
// bytes, a missing file) must be caught by the hashes. Structural edits re-sealed with a valid
// integrity hash, as a buggy writer would make them, exercise the field checks and the restore
// behind them: reading and resuming must then succeed or fail with a specific error.
import test from 'ava'
import fc from 'fast-check'
import { cpSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { CheckpointError, openSealedJson, readCheckpoint, sealJson, sha256 } from '../src/training/checkpoint'
import { DataError } from '../src/data/readers'
import { readExperimentCheckpoint } from '../src/experiment/checkpoint'
import { runExperiment } from '../src/experiment/experiment'
import { train, type TrainOptions } from '../src/training/train'
import { learnable } from './helpers/learnable'
import { miniConfig, miniData } from './experiment-fixtures'

const SEED = 20261127
const tmp = mkdtempSync(join(tmpdir(), 'kana-ckfuzz-'))
test.after.always(() => rmSync(tmp, { recursive: true, force: true }))
let copies = 0

const trainData = learnable(600, 64, 5, 3)
const trainBase: TrainOptions = { data: trainData, hidden: [16], lr: 3e-3, batchSize: 16, epochs: 4, seed: 2, threads: 1, progressInterval: 1 }

/** A train run and an experiment, each interrupted part-way: the checkpoints to mutate. */
const originals = (async () => {
  const trainDir = join(tmp, 'train')
  const ac = new AbortController()
  await train({ ...trainBase, out: trainDir, signal: ac.signal, onProgress: (p) => { if (p.epoch === 1 && p.step > 10) ac.abort() } }).catch((e) => { if (e.name !== 'AbortError') throw e })
  const expDir = join(tmp, 'experiment')
  const ac2 = new AbortController()
  const inMemory = await miniData()
  await runExperiment({ ...miniConfig, inMemory, report: false, out: expDir, signal: ac2.signal, log: (l) => { if (/^search trial 2\/2/.test(l)) ac2.abort() } }).catch((e) => { if (e.name !== 'AbortError') throw e })
  return { trainDir, expDir, inMemory }
})()

/** fc.assert, with the failing case's own error in the message (ava does not print `cause`). */
async function check<T extends unknown[]>(prop: fc.IAsyncProperty<T>, params: fc.Parameters<T>): Promise<void> {
  try {
    await fc.assert(prop, params)
  } catch (e) {
    const cause = (e as Error & { cause?: Error }).cause
    throw new Error(`${(e as Error).message}\ncause: ${cause?.stack ?? cause}`)
  }
}

const KINDS = {
  train: { index: 'checkpoint.json', read: (dir: string) => readCheckpoint(dir) },
  experiment: { index: 'experiment-checkpoint.json', read: (dir: string) => readExperimentCheckpoint(dir) },
} as const
type Kind = keyof typeof KINDS

/** A fresh copy of an original run directory. */
async function copyOf(kind: Kind): Promise<string> {
  const o = await originals
  const dir = join(tmp, `copy${++copies}`)
  cpSync(kind === 'train' ? o.trainDir : o.expDir, dir, { recursive: true })
  return dir
}

type ByteOp = { kind: 'flip'; at: number; mask: number } | { kind: 'truncate'; at: number } | { kind: 'append'; bytes: Uint8Array } | { kind: 'delete' }
const byteOp: fc.Arbitrary<ByteOp> = fc.oneof(
  { weight: 4, arbitrary: fc.record({ kind: fc.constant('flip' as const), at: fc.nat(), mask: fc.integer({ min: 1, max: 255 }) }) },
  { weight: 2, arbitrary: fc.record({ kind: fc.constant('truncate' as const), at: fc.nat() }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('append' as const), bytes: fc.uint8Array({ minLength: 1, maxLength: 16 }) }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('delete' as const) }) },
)

for (const kind of ['train', 'experiment'] as Kind[]) {
  test.serial(`${kind} checkpoint: any byte damage to any of its files is refused with a CheckpointError`, async (t) => {
    const counts: Record<string, number> = {}
    await check(
      fc.asyncProperty(fc.nat(), byteOp, async (which, op) => {
        const dir = await copyOf(kind)
        const cdir = join(dir, 'checkpoint')
        const files = readdirSync(cdir).sort()
        const file = join(cdir, files[which % files.length])
        const bytes = readFileSync(file)
        if (op.kind === 'delete') rmSync(file)
        else if (op.kind === 'flip') {
          const b = Buffer.from(bytes)
          b[op.at % b.length] ^= op.mask
          writeFileSync(file, b)
        } else if (op.kind === 'truncate') writeFileSync(file, bytes.subarray(0, op.at % bytes.length))
        else writeFileSync(file, Buffer.concat([bytes, op.bytes]))
        let outcome = 'accepted'
        try {
          await KINDS[kind].read(dir)
        } catch (e) {
          outcome = e instanceof CheckpointError ? `CheckpointError ${e.code}` : `${(e as Error).name}: ${(e as Error).message}`
        }
        counts[outcome] = (counts[outcome] ?? 0) + 1
        rmSync(dir, { recursive: true, force: true })
        if (!outcome.startsWith('CheckpointError')) throw new Error(`${op.kind} of ${files[which % files.length]}: ${outcome}`)
      }),
      { seed: SEED, numRuns: 300 },
    )
    t.log(`300 damaged copies: ${JSON.stringify(counts)}`)
    t.is(Object.values(counts).reduce((a, b) => a + b, 0), 300)
  })
}

/** Every path into a JSON value (objects and arrays), depth-first, at most `limit`. */
function paths(v: unknown, prefix: (string | number)[] = [], out: (string | number)[][] = [], limit = 4000): (string | number)[][] {
  if (out.length >= limit || v === null || typeof v !== 'object') return out
  for (const [k, x] of Object.entries(v)) {
    const p = [...prefix, Array.isArray(v) ? Number(k) : k]
    out.push(p)
    paths(x, p, out, limit)
  }
  return out
}

const plausible = fc.oneof(
  fc.jsonValue({ maxDepth: 2 }),
  fc.constantFrom(-1, 0, 1, 2, 1e9, 0.5, NaN, Infinity, -0, '', 'NaN', 'adam', 'train', 'validate', null, [], {}, [1, 2], { epoch: 0 }),
  fc.constant(undefined), // delete the key
)

/** The index with the value at `path` replaced (undefined deletes it), sealed again with a valid integrity hash. */
function edit(text: string, path: (string | number)[], value: unknown): string {
  const ix = openSealedJson(text, 'index', (why) => { throw new Error(why) })
  let o: any = ix
  for (const k of path.slice(0, -1)) o = o[k]
  const last = path[path.length - 1]
  if (value === undefined) {
    if (Array.isArray(o)) o.splice(Number(last), 1)
    else delete o[last]
  } else o[last] = value
  return sealJson(ix)
}

const SPECIFIC = (e: unknown) => e instanceof CheckpointError || e instanceof RangeError || e instanceof DataError || (e as NodeJS.ErrnoException).code === 'KANA_DIVERGED'

for (const kind of ['train', 'experiment'] as Kind[]) {
  test.serial(`${kind} checkpoint: re-sealed structural edits are read or refused with a specific error; resuming from the accepted ones never fails otherwise`, async (t) => {
    const o = await originals
    const original = readFileSync(join(kind === 'train' ? o.trainDir : o.expDir, 'checkpoint', KINDS[kind].index), 'utf8')
    const all = paths(openSealedJson(original, 'index', (why) => { throw new Error(why) }))
    const counts: Record<string, number> = {}
    let resumed = 0
    const resumeBudget = kind === 'train' ? 40 : 6 // a resumed miniature experiment takes seconds
    await check(
      fc.asyncProperty(fc.nat(), plausible, async (which, value) => {
        const path = all[which % all.length]
        const dir = await copyOf(kind)
        writeFileSync(join(dir, 'checkpoint', KINDS[kind].index), edit(original, path, value))
        let outcome: string
        try {
          await KINDS[kind].read(dir)
          outcome = 'read'
          if (resumed < resumeBudget) {
            resumed++
            try {
              if (kind === 'train') await train({ resume: dir, data: trainData, progressInterval: 1 })
              else await runExperiment({ resume: dir, inMemory: o.inMemory, report: false })
              outcome = 'read, resumed'
            } catch (e) {
              if (!SPECIFIC(e)) throw new Error(`resuming after ${JSON.stringify(path)} = ${JSON.stringify(value)}: ${(e as Error).stack}`)
              outcome = `read, resume refused (${(e as Error).name})`
            }
          }
        } catch (e) {
          if ((e as Error).message.startsWith('resuming after')) throw e
          if (!(e instanceof CheckpointError)) throw new Error(`reading after ${JSON.stringify(path)} = ${JSON.stringify(value)}: ${(e as Error).stack}`)
          outcome = `CheckpointError ${e.code}`
        }
        counts[outcome] = (counts[outcome] ?? 0) + 1
        rmSync(dir, { recursive: true, force: true })
      }),
      { seed: SEED, numRuns: kind === 'train' ? 300 : 200 },
    )
    t.log(`${kind === 'train' ? 300 : 200} edited indexes (${all.length} paths): ${JSON.stringify(counts)}`)
    t.true((counts.read ?? 0) + (counts['read, resumed'] ?? 0) > 0 && Object.keys(counts).some((k) => k.startsWith('CheckpointError')), 'both outcomes occur')
  })
}

// ---------------------------------------------------------------------------------------------
// Crafted tensor files, re-sealed (the index's SHA-256 of the file is unkeyed: anyone can
// recompute it). Every header that makes entries share, skip or add bytes must be refused before
// anything is allocated: entries pointing at the same bytes once made a 1.5 MB file allocate 3.2 GB.

type Header = Record<string, any>
function splitTensors(bytes: Uint8Array): { header: Header; data: Uint8Array } {
  const n = Number(new DataView(bytes.buffer, bytes.byteOffset, 8).getBigUint64(0, true))
  return { header: JSON.parse(Buffer.from(bytes.subarray(8, 8 + n)).toString('utf8')), data: bytes.subarray(8 + n) }
}
function joinTensors(header: Header, data: Uint8Array): Uint8Array {
  const json = Buffer.from(JSON.stringify(header))
  const padded = Math.ceil(json.length / 8) * 8
  const out = Buffer.alloc(8 + padded + data.length, 0x20)
  out.writeBigUInt64LE(BigInt(padded), 0)
  json.copy(out, 8)
  Buffer.from(data).copy(out, 8 + padded)
  return out
}
/** Replaces the tensor file of the checkpoint in `dir` with `bytes` and re-seals its index to match. */
function reseal(dir: string, kind: Kind, bytes: Uint8Array): void {
  const ixPath = join(dir, 'checkpoint', KINDS[kind].index)
  const ix = openSealedJson(readFileSync(ixPath, 'utf8'), 'index', (why) => { throw new Error(why) })
  writeFileSync(join(dir, 'checkpoint', ix.files.tensors.name), bytes)
  ix.files.tensors.size = bytes.length
  ix.files.tensors.sha256 = sha256(bytes)
  writeFileSync(ixPath, sealJson(ix))
}

type Craft = { kind: 'alias'; to: number } | { kind: 'swap'; a: number; b: number } | { kind: 'gap'; at: number; bytes: number } | { kind: 'extra'; alias: boolean; at: number } | { kind: 'bomb'; copies: number }
/** The generator of crafted tensor files: entries aliasing others, reordered, gapped, unknown, and the many-aliases bomb. */
const craft: fc.Arbitrary<Craft> = fc.oneof(
  fc.record({ kind: fc.constant('alias' as const), to: fc.nat() }),
  fc.record({ kind: fc.constant('swap' as const), a: fc.nat(), b: fc.nat() }),
  fc.record({ kind: fc.constant('gap' as const), at: fc.nat(), bytes: fc.integer({ min: 1, max: 64 }) }),
  fc.record({ kind: fc.constant('extra' as const), alias: fc.boolean(), at: fc.nat() }),
  fc.record({ kind: fc.constant('bomb' as const), copies: fc.integer({ min: 2, max: 2000 }) }),
)

function applyCraft(bytes: Uint8Array, c: Craft): Uint8Array | undefined {
  const { header, data } = splitTensors(bytes)
  const names = Object.keys(header).filter((k) => k !== '__metadata__' && header[k].data_offsets[1] > header[k].data_offsets[0])
  if (names.length < 2) return undefined
  const pick = (i: number) => names[i % names.length]
  if (c.kind === 'alias') {
    // a later entry pointing at the bytes of an earlier one of the same dtype and size (or the first's start)
    const victim = pick(c.to % (names.length - 1) + 1)
    const [a, b] = header[victim].data_offsets
    header[victim].data_offsets = [0, b - a]
    if (b - a > data.length) return undefined
    return joinTensors(header, data)
  }
  if (c.kind === 'swap') {
    const [x, y] = [pick(c.a), pick(c.b)]
    const [ox, oy] = [header[x].data_offsets, header[y].data_offsets]
    if (x === y || ox[1] - ox[0] !== oy[1] - oy[0] || header[x].dtype !== header[y].dtype) return undefined
    // the same bytes, listed out of order: the data of the two entries exchanged
    ;[header[x].data_offsets, header[y].data_offsets] = [oy, ox]
    return joinTensors(header, data)
  }
  if (c.kind === 'gap') {
    const at = header[pick(c.at)].data_offsets[0]
    for (const k of names) for (const j of [0, 1]) if (header[k].data_offsets[j] > at || (j === 0 && header[k].data_offsets[0] === at)) header[k].data_offsets[j] += c.bytes
    for (const k of Object.keys(header)) if (k !== '__metadata__' && !names.includes(k) && header[k].data_offsets[0] >= at) header[k].data_offsets = header[k].data_offsets.map((o: number) => o + c.bytes)
    return joinTensors(header, Buffer.concat([data.subarray(0, at), Buffer.alloc(c.bytes), data.subarray(at)]))
  }
  if (c.kind === 'extra') {
    if (c.alias) {
      const src = header[pick(c.at)]
      header['unknown.0'] = { ...src }
      return joinTensors(header, data)
    }
    header['unknown.0'] = { dtype: 'F32', shape: [2], data_offsets: [data.length, data.length + 8] }
    return joinTensors(header, Buffer.concat([data, Buffer.alloc(8)]))
  }
  // many names over the same bytes
  const src = header[pick(0)]
  for (let i = 0; i < c.copies; i++) header[`alias.${i}`] = { ...src }
  return joinTensors(header, data)
}

for (const kind of ['train', 'experiment'] as Kind[]) {
  test.serial(`${kind} checkpoint: crafted tensor files (aliasing, reordered, gapped, unknown tensors) are refused before allocating`, async (t) => {
    const counts: Record<string, number> = {}
    let made = 0
    await check(
      fc.asyncProperty(craft, async (c) => {
        const dir = await copyOf(kind)
        try {
          const cdir = join(dir, 'checkpoint')
          const file = readdirSync(cdir).find((f) => f.endsWith('.safetensors'))!
          const crafted = applyCraft(readFileSync(join(cdir, file)), c)
          if (!crafted) return
          made++
          reseal(dir, kind, crafted)
          let outcome = 'accepted'
          try { await KINDS[kind].read(dir) } catch (e) { outcome = e instanceof CheckpointError ? `CheckpointError ${e.code}` : `${(e as Error).name}: ${(e as Error).message}` }
          counts[`${c.kind}: ${outcome}`] = (counts[`${c.kind}: ${outcome}`] ?? 0) + 1
          if (outcome !== 'CheckpointError ECORRUPT') throw new Error(`${JSON.stringify(c)}: ${outcome}`)
        } finally {
          rmSync(dir, { recursive: true, force: true })
        }
      }),
      { seed: SEED, numRuns: 150 },
    )
    t.log(`${made} crafted tensor files: ${JSON.stringify(counts)}`)
    t.true(made > 100)
  })
}

test.serial('a re-sealed tensor file whose unchanged bytes are read back is accepted (the crafting helpers keep a valid file valid)', async (t) => {
  const dir = await copyOf('train')
  const cdir = join(dir, 'checkpoint')
  const file = readdirSync(cdir).find((f) => f.endsWith('.safetensors'))!
  const { header, data } = splitTensors(readFileSync(join(cdir, file)))
  reseal(dir, 'train', joinTensors(header, data))
  await t.notThrowsAsync(readCheckpoint(dir))
})

/** Strings that name inherited properties or look like the encoded non-finite numbers, and arbitrary ones. */
const hostileString = fc.oneof(
  fc.constantFrom('toString', 'valueOf', 'constructor', '__proto__', 'hasOwnProperty', 'isPrototypeOf', 'propertyIsEnumerable', 'toLocaleString', '__defineGetter__', 'NaN ', 'nan', 'infinity'),
  fc.string(),
  fc.string({ unit: 'grapheme', maxLength: 20 }),
)

test('sealed JSON: any object of hostile strings (inherited property names included) opens to itself', (t) => {
  const bad = (why: string): never => { throw new Error(why) }
  t.deepEqual(openSealedJson(sealJson({ name: 'toString', list: ['constructor', '__proto__'] }), 'x', bad), { name: 'toString', list: ['constructor', '__proto__'] })
  fc.assert(
    fc.property(fc.dictionary(hostileString, fc.oneof(hostileString, fc.array(hostileString, { maxLength: 4 }), fc.double())), (o) => {
      const back = openSealedJson(sealJson(o), 'x', bad)
      // JSON.parse makes "__proto__" an own key, as the object literal spread does not: compare as JSON
      return JSON.stringify(back) === JSON.stringify(JSON.parse(JSON.stringify(o, (_, x) => (typeof x === 'number' && !Number.isFinite(x) ? String(x) : x)), (_, x) => (x === 'NaN' ? NaN : x === 'Infinity' ? Infinity : x === '-Infinity' ? -Infinity : x)))
    }),
    { seed: SEED, numRuns: 500 },
  )
  t.pass()
})
