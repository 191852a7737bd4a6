// Checkpoints: a run (run.ts) with its model, written so that resuming continues it to exactly
// the result an uninterrupted run gives. One format for a run — `RunSnapshot`: the loop's progress
// counters, the history, each component's state (early stopping, best weights, the kept epoch, the
// stop policies') and the model's (weights, optimiser moments and step, the generator, the
// engine's unfinished epoch) — written and read by one codec (encodeSnapshot/decodeSnapshot).
// `train`'s checkpoint holds one snapshot; an experiment's (experiment/checkpoint.ts) one per trial
// and one for the reference.
//
//   RUN_DIR/checkpoint/
//     checkpoint.json            the index, written last and renamed into place: no index, no checkpoint
//     tensors.<id>.safetensors   the snapshot's tensors (weights, best, m, v, the epoch's order)
//
// Every checkpoint writes its data file under a fresh name (<id>) and only then replaces
// checkpoint.json, which records the file's size and SHA-256; files of older checkpoints are
// removed afterwards. A crash at any moment therefore leaves the previous checkpoint or the new
// one, never a mix, and a damaged file is refused by its hash instead of silently resuming wrong.
// checkpoint.json also holds the resolved configuration and where the data came from with a
// fingerprint of it. JSON carries every float64 exactly (shortest round-trip form), so the
// running sums resume bit for bit.
import { createHash, randomBytes } from 'node:crypto'
import { promises as fsp } from 'node:fs'
import { join } from 'node:path'
import { makeOutputDir, writeFileAtomic } from '../output/atomic'
import { parseNonFinite, stringifyNonFinite } from '../output/json'
import { EarlyStopping } from './early-stopping'
import type { TrainingState } from '../engine/mlp'
import type { Inputs } from '../data/inputs'
import type { ResolvedConfig } from './records'
import type { RunState } from './run'
import { checkModelConfig, defaultModelConfig } from './config'

/** Settings added after checkpoint version 2 was first written (issue F1): absent from older checkpoints. */
const NEWER_FIELDS = ['warmupEpochs', 'pctStart', 'divFactor', 'finalDivFactor', 'activation', 'leakySlope', 'dropout', 'batchNorm', 'bnMomentum', 'bnEps', 'labelSmoothing', 'weightDecay', 'momentum', 'nesterov']

export const CHECKPOINT_DIR = 'checkpoint'
export const CHECKPOINT_INDEX = 'checkpoint.json'
export const CHECKPOINT_FORMAT = 'kana-native-checkpoint'
export const CHECKPOINT_VERSION = 2
const TENSORS_FORMAT = 'kana-native-checkpoint-tensors'
/** Bytes hashed at each end of a data file for its fingerprint. */
const FINGERPRINT_SPAN = 1 << 20
const HOST_LE = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1

/** A checkpoint that is missing, damaged, or does not fit the run being resumed. */
export class CheckpointError extends Error {
  /** 'ENOCHECKPOINT', 'ECORRUPT', 'EVERSION', 'EDATA', 'ECONFLICT'. */
  readonly code: string
  constructor(code: string, message: string, options?: ErrorOptions) {
    super(message, options)
    this.name = 'CheckpointError'
    this.code = code
  }
}

/** Size and SHA-256 of the first and last MiB: cheap, and catches a different or changed file. */
export interface FileFingerprint {
  role: string
  path: string
  size: number
  head: string
  tail: string
}

/** Where the data came from, enough to load it again, and what it was. */
export interface DataRecord {
  kind: 'files' | 'dataset' | 'memory'
  images?: string
  labels?: string
  dataset?: string
  cacheDir?: string
  classmap?: string
  features: number
  classes: number
  classNames: string[]
  samples: { train: number; validation: number; test: number }
  files: FileFingerprint[]
  /** SHA-256 of the three parts exactly as trained on (after the seeded split). */
  fingerprint: string
}

/**
 * A run and its model, as every checkpoint holds them. `model` is absent once the model was freed
 * (a trial dropped by the search: it keeps only its record). The engine's weights are Float32Array,
 * the reference's Float64Array.
 */
export interface RunSnapshot<W extends Float32Array | Float64Array = Float32Array> extends RunState<W> {
  released: boolean
  model?: ModelState<W>
  /** States of the stop policies and sources beside the loop, by name (JSON; e.g. the reference's budget). */
  extra?: Record<string, unknown>
}

/** What decides the rest of a model's training: its weights and its optimiser's state. */
export interface ModelState<W extends Float32Array | Float64Array = Float32Array> {
  weights: W[]
  /** Batch norm's [γ, β, running mean, running variance] per hidden layer (MLP.getNormState()); empty or absent without. */
  norm?: W[]
  /** Optimiser steps taken. */
  step: number
  /** The engine's shuffling generator (a decimal string); null for the reference. */
  rng: string | null
  /** Adam's moments, or SGD's momentum in `m`; empty before the first step that makes them. One array per parameter tensor: W, b, then γ, β of the hidden layers with batch norm. */
  m: W[]
  v: W[]
  /** The engine's own unfinished epoch (train's engine-shuffled epochs). */
  partialEpoch: TrainingState['partialEpoch']
  /** The parameters at the start of the epoch under way (the reference's fallback for an abandoned epoch). */
  epochStart?: W[]
}

/** train's checkpoint: the run's configuration, its data, the epoch's learning rate, the snapshot. */
export interface Checkpoint {
  config: ResolvedConfig
  data: DataRecord
  /** The learning rate of the epoch under way (what the schedule gave it: checked again on resume). */
  lr: number
  snapshot: RunSnapshot & { model: ModelState }
  createdAt?: string
}

/** A data file of a checkpoint as its index records it. */
export interface FileRef {
  name: string
  size: number
  sha256: string
}

export const sha256 = (b: Uint8Array): string => createHash('sha256').update(b).digest('hex')

export async function fileFingerprint(path: string, role: string): Promise<FileFingerprint> {
  const fh = await fsp.open(path, 'r')
  try {
    const { size } = await fh.stat()
    const read = async (pos: number) => {
      const len = Math.min(FINGERPRINT_SPAN, size - pos)
      const buf = Buffer.alloc(len)
      let got = 0
      while (got < len) {
        const { bytesRead } = await fh.read(buf, got, len - got, pos + got)
        if (bytesRead === 0) break
        got += bytesRead
      }
      return sha256(buf.subarray(0, got))
    }
    return { role, path, size, head: await read(0), tail: await read(Math.max(0, size - FINGERPRINT_SPAN)) }
  } finally {
    await fh.close()
  }
}

/** SHA-256 over the split data (sizes, labels, pixels) exactly as the engine sees it. */
export function dataFingerprint(inputs: Inputs): string {
  const h = createHash('sha256')
  h.update(`${inputs.features},${inputs.classes};`)
  for (const part of [inputs.train, inputs.validation, inputs.test]) {
    h.update(`${part.labels.length};`)
    h.update(new Uint8Array(part.labels.buffer, part.labels.byteOffset, part.labels.byteLength))
    h.update(part.images)
  }
  return h.digest('hex')
}

// ---------------------------------------------------------------------------------------------
// Sealed JSON: the index of a checkpoint carries the SHA-256 of its own text, so a flipped bit or a
// hand edit that still parses is refused instead of resuming a different run. Non-finite numbers
// (a diverged trial's loss) are written as the strings "NaN", "Infinity", "-Infinity" (json.ts).

const textOf = (v: unknown) => stringifyNonFinite(v, 1)

/** `obj` as JSON text with an `integrity` field (SHA-256 of the text without it) at the end. */
export function sealJson(obj: Record<string, unknown>): string {
  return textOf({ ...obj, integrity: sha256(new TextEncoder().encode(textOf(obj))) }) + '\n'
}

/** Parses sealed JSON and checks its integrity; `bad` is called with the reason when it fails. */
export function openSealedJson(text: string, name: string, bad: (why: string) => never): Record<string, any> {
  let v: unknown
  try {
    v = parseNonFinite(text)
  } catch (e) {
    return bad(`${name} is not valid JSON (${(e as Error).message})`)
  }
  if (typeof v !== 'object' || v === null || Array.isArray(v)) return bad(`${name} does not hold an object`)
  const { integrity, ...rest } = v as Record<string, unknown>
  if (typeof integrity !== 'string') return bad(`${name} has no integrity field`)
  // byte for byte: the hash covers the content, the comparison also the layout (a changed space)
  if (sha256(new TextEncoder().encode(textOf(rest))) !== integrity || sealJson(rest) !== text) return bad(`${name} does not match its integrity hash: it was changed after it was written`)
  return rest
}

// ---------------------------------------------------------------------------------------------
// A small strict safetensors codec for 1-D F32/U32/F64 tensors (training and experiment state)

export type Tensor = Float32Array | Uint32Array | Float64Array

const dtypeOf = (t: Tensor) => (t instanceof Float32Array ? 'F32' : t instanceof Float64Array ? 'F64' : 'U32')

export function encodeTensors(tensors: [string, Tensor][], meta: Record<string, string>): Uint8Array {
  const header: Record<string, unknown> = { __metadata__: meta }
  let size = 0
  for (const [name, t] of tensors) {
    header[name] = { dtype: dtypeOf(t), shape: [t.length], data_offsets: [size, size + t.byteLength] }
    size += t.byteLength
  }
  const json = new TextEncoder().encode(JSON.stringify(header))
  const padded = Math.ceil(json.length / 8) * 8
  const bytes = new Uint8Array(8 + padded + size)
  new DataView(bytes.buffer).setBigUint64(0, BigInt(padded), true)
  bytes.set(json, 8)
  bytes.fill(0x20, 8 + json.length, 8 + padded)
  let pos = 8 + padded
  for (const [, t] of tensors) {
    if (HOST_LE) bytes.set(new Uint8Array(t.buffer, t.byteOffset, t.byteLength), pos)
    else {
      const v = new DataView(bytes.buffer, pos, t.byteLength)
      t.forEach((x: number, i: number) => (t instanceof Float32Array ? v.setFloat32(4 * i, x, true) : t instanceof Float64Array ? v.setFloat64(8 * i, x, true) : v.setUint32(4 * i, x, true)))
    }
    pos += t.byteLength
  }
  return bytes
}

/**
 * The tensors of a decoded file, by name; remembers which were taken (`get`), so that the reader
 * can refuse a file holding tensors its index does not name (`unused`).
 */
export class TensorMap extends Map<string, Tensor> {
  private readonly taken = new Set<string>()
  override get(name: string): Tensor | undefined {
    if (super.has(name)) this.taken.add(name)
    return super.get(name)
  }
  /** Names never taken, in file order. */
  unused(): string[] {
    return [...this.keys()].filter((k) => !this.taken.has(k))
  }
}

/**
 * Decodes a checkpoint's tensor file. Strict, as decodeModel is for model files: the tensors must
 * tile the data section exactly, in header order (as encodeTensors writes them), so no byte is
 * decoded twice — a file whose entries all point at the same bytes would otherwise make every
 * entry a full allocation (entries × size from a small file) — and none lies unused.
 */
export function decodeTensors(bytes: Uint8Array, file: string): { meta: Record<string, unknown>; tensors: TensorMap } {
  const bad = (why: string): never => { throw new CheckpointError('ECORRUPT', `${file}: ${why}`) }
  if (bytes.length < 8) bad('too short')
  const n = Number(new DataView(bytes.buffer, bytes.byteOffset, 8).getBigUint64(0, true))
  if (!(n > 0 && 8 + n <= bytes.length)) bad('bad header length')
  let header: Record<string, any>
  try { header = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(bytes.subarray(8, 8 + n))) } catch { return bad('header is not JSON') }
  if (typeof header !== 'object' || header === null || Array.isArray(header)) bad('header is not an object')
  const meta = Object.hasOwn(header, '__metadata__') ? (header as Record<string, any>).__metadata__ : undefined
  if (typeof meta !== 'object' || meta === null) bad('no __metadata__')
  const start = 8 + n
  const clip = (name: string) => JSON.stringify(name.length > 80 ? `${name.slice(0, 80)}…` : name)
  // every entry checked before anything is allocated
  const spans: { name: string; dtype: string; count: number; a: number; b: number }[] = []
  let pos = 0
  for (const [name, info] of Object.entries(header)) {
    if (name === '__metadata__') continue
    const { dtype, shape, data_offsets: off } = isObj(info) ? info : ({} as Record<string, any>)
    if ((dtype !== 'F32' && dtype !== 'U32' && dtype !== 'F64') || !Array.isArray(shape) || shape.length !== 1 || !Number.isSafeInteger(shape[0]) || shape[0] < 0 || !Array.isArray(off) || off.length !== 2) bad(`tensor ${clip(name)} has a bad header entry`)
    const [a, b] = off as number[]
    const width = dtype === 'F64' ? 8 : 4
    if (!Number.isSafeInteger(a) || !Number.isSafeInteger(b) || a < 0 || b - a !== width * shape[0] || start + b > bytes.length) bad(`tensor ${clip(name)} has bad offsets`)
    if (a < pos) bad(`tensor ${clip(name)} overlaps the tensor before it or is out of order (bytes ${a}–${b}, the previous one ends at ${pos})`)
    if (a > pos) bad(`bytes ${pos}–${a} of the data, before tensor ${clip(name)}, belong to no tensor`)
    spans.push({ name, dtype, count: shape[0], a, b })
    pos = b
  }
  if (start + pos !== bytes.length) bad('trailing bytes')
  const tensors = new TensorMap()
  for (const { name, dtype, count, a, b } of spans) {
    const t = dtype === 'F32' ? new Float32Array(count) : dtype === 'F64' ? new Float64Array(count) : new Uint32Array(count)
    const src = bytes.subarray(start + a, start + b)
    if (HOST_LE) new Uint8Array(t.buffer).set(src)
    else { const v = new DataView(src.buffer, src.byteOffset, src.byteLength); for (let i = 0; i < t.length; i++) t[i] = dtype === 'F32' ? v.getFloat32(4 * i, true) : dtype === 'F64' ? v.getFloat64(8 * i, true) : v.getUint32(4 * i, true) }
    tensors.set(name, t)
  }
  return { meta, tensors }
}

/** Refuses a tensor file holding tensors its index never named (after every one was taken). */
export function checkNoUnusedTensors(tensors: TensorMap, bad: (why: string) => never): void {
  const extra = tensors.unused()
  if (extra.length) bad(`the tensor file holds ${extra.length} tensor(s) its index does not name (${extra.slice(0, 3).map((x) => JSON.stringify(x.slice(0, 80))).join(', ')}${extra.length > 3 ? ', …' : ''})`)
}

// ---------------------------------------------------------------------------------------------
// The mechanics both kinds of checkpoint share (train's here, the experiment's in
// experiment-checkpoint.ts): data files under fresh names first, then the sealed index that names
// them, renamed into place, then the older files removed; on reading, each file checked against
// the size and SHA-256 its index records.

/**
 * Writes `data` (key → bytes) as `<key>.<id>.safetensors` into `dir`, then the index that
 * `index(files)` returns, sealed, as `indexName`; removes the data files the previous index
 * named — those only, never other files that happen to lie there. `dir` must be a real folder
 * (not a symbolic link) inside the run directory.
 */
export async function commitCheckpoint(dir: string, indexName: string, data: [string, Uint8Array][], index: (files: Record<string, FileRef>) => Record<string, unknown>): Promise<void> {
  await makeOutputDir(dir)
  const previous = await recordedNames(dir, indexName)
  const id = `${Date.now().toString(36)}-${randomBytes(4).toString('hex')}`
  const files: Record<string, FileRef> = {}
  for (const [key, bytes] of data) {
    const name = `${key}.${id}.safetensors`
    await writeFileAtomic(join(dir, name), bytes)
    files[key] = { name, size: bytes.length, sha256: sha256(bytes) }
  }
  await writeFileAtomic(join(dir, indexName), sealJson(index(files)))
  // Now the older checkpoint's files are unreferenced. (A data file of a checkpoint that crashed
  // before its index was written is named by no index: it goes with the folder when the run ends.)
  const keep = new Set(Object.values(files).map((f) => f.name))
  for (const f of previous) {
    if (!keep.has(f)) await fsp.rm(join(dir, f), { force: true }).catch(() => {})
  }
}

/** The data files the index `indexName` in `dir` names (none when it is missing or not intact). */
async function recordedNames(dir: string, indexName: string): Promise<string[]> {
  let text: string
  try { text = await fsp.readFile(join(dir, indexName), 'utf8') } catch { return [] }
  try {
    const ix = openSealedJson(text, indexName, (why) => { throw new Error(why) })
    // only names of the form this function writes: nothing outside the folder, nothing else
    return isObj(ix.files) ? Object.values(ix.files).map((f) => (isObj(f) ? f.name : undefined)).filter((n): n is string => typeof n === 'string' && /^[\w-]+\.[0-9a-z]+-[0-9a-f]{8}\.safetensors$/.test(n)) : []
  } catch {
    return []
  }
}

/** Reads the data file `ref` (an entry of an index) from `dir`, checked against its recorded size and SHA-256. */
export async function readRecordedFile(dir: string, ref: unknown, what: string, indexName: string, bad: (why: string) => never): Promise<Uint8Array> {
  if (!isObj(ref) || typeof ref.name !== 'string' || ref.name.includes('/') || ref.name.includes('\\') || !isInt(ref.size) || typeof ref.sha256 !== 'string') return bad(`the entry for ${what} is malformed`)
  let bytes: Uint8Array
  try { bytes = await fsp.readFile(join(dir, ref.name)) } catch (e) { return bad(`${ref.name} cannot be read (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`) }
  if (bytes.length !== ref.size) bad(`${ref.name} has ${bytes.length} bytes, ${indexName} says ${ref.size}`)
  if (sha256(bytes) !== ref.sha256) bad(`${ref.name} does not match its SHA-256 in ${indexName}`)
  return bytes
}

/**
 * The text of the index `indexName` in RUN_DIR/checkpoint/; a missing one is explained: no such
 * directory, a finished run (its `finishedFile` is there), or one never checkpointed.
 */
export async function readIndexText(runDir: string, indexName: string, o: { what: string; finishedFile: string; hint?: string }): Promise<string> {
  const indexPath = join(runDir, CHECKPOINT_DIR, indexName)
  try {
    return await fsp.readFile(indexPath, 'utf8')
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw new CheckpointError('ECORRUPT', `cannot read ${indexPath}: ${(e as Error).message}`, { cause: e })
  }
  const exists = await fsp.access(runDir).then(() => true, () => false)
  const finished = await fsp.access(join(runDir, o.finishedFile)).then(() => true, () => false)
  throw new CheckpointError('ENOCHECKPOINT', !exists
    ? `cannot resume ${runDir}: no such ${o.what} directory`
    : finished
      ? `nothing to resume in ${runDir}: the ${o.what} finished (${o.finishedFile} is there) and has no checkpoint`
      : `cannot resume ${runDir}: it has no ${o.what === 'run' ? '' : `${o.what} `}checkpoint (${indexPath} is missing)${o.hint ? `. ${o.hint}` : ''}`)
}

export const isObj = (v: unknown): v is Record<string, any> => typeof v === 'object' && v !== null && !Array.isArray(v)
export const isInt = (v: unknown, min = 0): v is number => Number.isSafeInteger(v) && (v as number) >= min

// ---------------------------------------------------------------------------------------------
// The snapshot codec: JSON for the counters and records, tensors (named under `prefix`) for the rest.

type Tensors = [string, Tensor][]

/** The snapshot's JSON record, its tensors appended to `tensors` under `prefix`. */
export function encodeSnapshot<W extends Float32Array | Float64Array>(prefix: string, s: RunSnapshot<W>, tensors: Tensors): Record<string, unknown> {
  const list = (name: string, xs: W[] | undefined): number => {
    xs?.forEach((x, i) => tensors.push([`${prefix}${name}.${i}`, x]))
    return xs?.length ?? 0
  }
  const { model, best, kept, ...rest } = s
  let m: Record<string, unknown> | null = null
  if (model) {
    const pe = model.partialEpoch
    if (pe) tensors.push([`${prefix}partialEpoch.order`, pe.order])
    m = {
      step: model.step, rng: model.rng,
      partialEpoch: pe && { batchSize: pe.batchSize, nextStep: pe.nextStep, loss: pe.loss, correct: pe.correct, length: pe.order.length },
      tensors: { weights: list('weights', model.weights), norm: list('norm', model.norm), m: list('m', model.m), v: list('v', model.v), epochStart: list('epochStart', model.epochStart) },
    }
  }
  return { ...rest, divergence: rest.divergence ?? null, extra: rest.extra ?? null, tensors: { best: list('best', best), kept: list('kept', kept) }, model: m }
}

const STOPS = [null, 'early-stopping', 'completed', 'diverged', 'budget']
const EPOCH_FIELDS = ['lr', 'trainLoss', 'trainAccuracy', 'valLoss', 'valAccuracy', 'seconds'] as const
const isNum = (v: unknown): v is number => typeof v === 'number' && Number.isFinite(v)

/**
 * A snapshot from its JSON record and the tensors under `prefix`, every field checked: `bad` is
 * called with what is wrong. `type` is the tensors' array type (the engine's or the reference's).
 */
export function decodeSnapshot<W extends Float32Array | Float64Array>(
  prefix: string, r: unknown, tensors: Map<string, Tensor>, type: { new (n: number): W }, bad: (why: string) => never,
): RunSnapshot<W> {
  const what = prefix ? `${prefix.replace(/\/$/, '')}: ` : ''
  const fail = (why: string): never => bad(`${what}${why}`)
  if (!isObj(r)) return fail('the run record is malformed')
  const take = (name: string, count: unknown): W[] | undefined => {
    if (!isInt(count)) fail(`the tensor count of ${name} is malformed`)
    if (count === 0) return undefined
    return Array.from({ length: count as number }, (_, i) => {
      const t = tensors.get(`${prefix}${name}.${i}`)
      if (!(t instanceof type)) fail(`tensor ${name}.${i} is missing or of the wrong type`)
      return t as W
    })
  }
  const p = r.progress
  if (!Array.isArray(r.history)) fail('the history is malformed')
  r.history.forEach((h: unknown, i: number) => {
    // a diverged epoch's losses may be NaN or ±Infinity: numbers all the same
    if (!isObj(h) || h.epoch !== i + 1 || !EPOCH_FIELDS.every((k) => typeof h[k] === 'number')) fail(`history entry ${i + 1} is malformed`)
  })
  if (!isObj(p) || p.epoch !== r.history.length || (p.phase !== 'train' && p.phase !== 'validate') || !isNum(p.epochSeconds) || !isNum(p.seconds) || p.epochSeconds < 0 || p.seconds < p.epochSeconds) fail('the progress counters are malformed')
  const pa = p.partial
  if (pa !== null && (!isObj(pa) || !isInt(pa.nextBatch) || !isNum(pa.loss) || !isInt(pa.correct) || p.phase !== 'train')) fail('the unfinished epoch is malformed')
  const pf = p.pendingFit
  if ((pf !== null) !== (p.phase === 'validate') || (pf !== null && (!isObj(pf) || typeof pf.loss !== 'number' || typeof pf.accuracy !== 'number'))) fail('the pending epoch result is malformed')
  if (!STOPS.includes(r.stopReason)) fail(`unknown stop reason ${JSON.stringify(r.stopReason)}`)
  if (r.divergence !== null && typeof r.divergence !== 'string') fail('the divergence is malformed')
  if (typeof r.finished !== 'boolean' || typeof r.released !== 'boolean' || !isInt(r.weightsEpoch) || r.weightsEpoch > r.history.length) fail('the run\'s state is malformed')
  if (r.extra !== null && !isObj(r.extra)) fail('the extra states are malformed')
  let earlyStopping
  try { earlyStopping = EarlyStopping.fromJSON(r.earlyStopping).toJSON() } catch (e) { return fail(`early stopping state: ${(e as Error).message}`) }
  if (earlyStopping.bestEpoch >= r.history.length) fail(`the best epoch ${earlyStopping.bestEpoch + 1} lies beyond the history`)
  if (!isObj(r.tensors)) fail('the tensor list is malformed')
  const best = take('best', r.tensors.best)
  const kept = take('kept', r.tensors.kept)
  // until finish() the best epoch's weights are kept exactly when an epoch improved
  if (!r.finished && !r.released && (earlyStopping.bestEpoch >= 0) !== (best !== undefined)) fail('the best weights and the early-stopping state disagree')
  let model: ModelState<W> | undefined
  if (r.model !== null) {
    const m = r.model
    if (!isObj(m) || !isInt(m.step) || (m.rng !== null && (typeof m.rng !== 'string' || !/^\d+$/.test(m.rng))) || !isObj(m.tensors)) fail('the model state is malformed')
    const weights = take('weights', m.tensors.weights)
    if (!weights) return fail('the model state has no weights')
    // without batch norm there is no norm state (and snapshots from before it have no entry)
    const norm = m.tensors.norm === undefined ? [] : take('norm', m.tensors.norm) ?? []
    if (norm.length % 4 !== 0 || norm.length / 4 > weights.length / 2 - 1) fail('the norm state does not fit the weights')
    // the optimiser's arrays: W, b of each layer, then γ, β of the hidden layers with batch norm
    const params: number[] = []
    for (let l = 0; l < weights.length / 2; l++) {
      params.push(weights[2 * l].length, weights[2 * l + 1].length)
      if (4 * l < norm.length) params.push(norm[4 * l].length, norm[4 * l].length)
    }
    norm.forEach((x, k) => { if (x.length !== weights[2 * Math.floor(k / 4) + 1].length) fail('the norm state does not fit the weights') })
    const mom = (name: string) => {
      const xs = take(name, m.tensors[name]) ?? []
      if (xs.length !== 0 && (xs.length !== params.length || xs.some((x, k) => x.length !== params[k]))) fail(`${name} does not fit the weights`)
      return xs
    }
    let partialEpoch: TrainingState['partialEpoch'] = null
    const pe = m.partialEpoch
    if (pe !== null) {
      if (!isObj(pe) || !isInt(pe.batchSize, 1) || !isInt(pe.nextStep, 1) || !isNum(pe.loss) || !isInt(pe.correct) || !isInt(pe.length, 1) || p.phase !== 'train') fail('the engine\'s unfinished epoch is malformed')
      const order = tensors.get(`${prefix}partialEpoch.order`)
      if (!(order instanceof Uint32Array) || order.length !== pe.length) fail('the unfinished epoch\'s order is missing or has the wrong size')
      partialEpoch = { order: order as Uint32Array, batchSize: pe.batchSize, nextStep: pe.nextStep, loss: pe.loss, correct: pe.correct }
    }
    const epochStart = take('epochStart', m.tensors.epochStart)
    model = { weights, norm, step: m.step, rng: m.rng, m: mom('m'), v: mom('v'), partialEpoch, ...(epochStart ? { epochStart } : {}) }
  } else if (!r.released) fail('a live run without its model state')
  return {
    progress: { epoch: p.epoch, phase: p.phase, partial: pa && { nextBatch: pa.nextBatch, loss: pa.loss, correct: pa.correct }, pendingFit: pf && { loss: pf.loss, accuracy: pf.accuracy }, epochSeconds: p.epochSeconds, seconds: p.seconds },
    history: r.history, stopReason: r.stopReason, divergence: r.divergence ?? undefined, finished: r.finished, weightsEpoch: r.weightsEpoch,
    earlyStopping, best, kept, released: r.released, model, extra: r.extra ?? undefined,
  }
}

/** The tensors of a snapshot file: their own small safetensors header names the format. */
export const encodeCheckpointTensors = (tensors: Tensors): Uint8Array => encodeTensors(tensors, { 'kana-native': JSON.stringify({ format: TENSORS_FORMAT, version: CHECKPOINT_VERSION }) })

// ---------------------------------------------------------------------------------------------
// train's checkpoint

/** Writes a checkpoint into RUN_DIR/checkpoint/ (the tensors first, checkpoint.json last); returns that folder. */
export async function writeCheckpoint(runDir: string, c: Checkpoint): Promise<string> {
  const dir = join(runDir, CHECKPOINT_DIR)
  const tensors: Tensors = []
  const run = encodeSnapshot('', c.snapshot, tensors)
  await commitCheckpoint(dir, CHECKPOINT_INDEX, [['tensors', encodeCheckpointTensors(tensors)]], (files) => ({
    format: CHECKPOINT_FORMAT,
    version: CHECKPOINT_VERSION,
    createdAt: new Date().toISOString(),
    config: c.config,
    data: c.data,
    lr: c.lr,
    run,
    files,
  }))
  return dir
}

/** Removes the checkpoint of a run that has finished (index first, so no half checkpoint is ever visible). */
export async function removeCheckpoint(runDir: string, indexName = CHECKPOINT_INDEX): Promise<void> {
  const dir = join(runDir, CHECKPOINT_DIR)
  await fsp.rm(join(dir, indexName), { force: true })
  await fsp.rm(dir, { recursive: true, force: true })
}

/** Reads and checks RUN_DIR/checkpoint/: every field, the tensor file's size and hash, every shape. */
export async function readCheckpoint(runDir: string): Promise<Checkpoint> {
  const dir = join(runDir, CHECKPOINT_DIR)
  const text = await readIndexText(runDir, CHECKPOINT_INDEX, {
    what: 'run', finishedFile: 'metrics.json',
    hint: 'A checkpoint is written when a run is interrupted with Ctrl-C/SIGTERM; a run that was killed outright cannot be resumed',
  })
  const bad = (why: string): never => { throw new CheckpointError('ECORRUPT', `the checkpoint in ${dir} is damaged: ${why}`) }
  const ix = openSealedJson(text, CHECKPOINT_INDEX, bad)
  if (ix.format !== CHECKPOINT_FORMAT) bad(`${CHECKPOINT_INDEX} is not a kana-native checkpoint`)
  if (ix.version !== CHECKPOINT_VERSION) throw new CheckpointError('EVERSION', `the checkpoint in ${dir} has version ${ix.version}; this kana-native reads version ${CHECKPOINT_VERSION}`)

  const config = ix.config as ResolvedConfig
  if (!isObj(config) || !Array.isArray(config.layers) || !config.layers.every((n) => isInt(n, 1)) || config.layers.length < 2 || !isInt(config.epochs, 1) || !isInt(config.seed) || !isInt(config.threads, 1)) bad('config is incomplete')
  // a checkpoint written before issue F1's settings existed ran with their defaults, the study's
  const cfg = config as unknown as Record<string, unknown>
  for (const [k, v] of Object.entries(defaultModelConfig())) {
    if (NEWER_FIELDS.includes(k) && cfg[k] === undefined) cfg[k] = k === 'weightDecay' && config.optimizer === 'adamw' ? 1e-2 : v
  }
  try {
    checkModelConfig({ ...config, hidden: config.layers.slice(1, -1) })
  } catch (e) {
    bad(`config: ${(e as Error).message}`)
  }
  const sp = config.split
  if (!isObj(sp) || ![sp.train, sp.validation, sp.test].every((x) => typeof x === 'number' && x >= 0 && Number.isFinite(x)) || !(sp.train > 0) || Math.abs(sp.train + sp.validation + sp.test - 1) > 1e-9) bad('config: the split is malformed')
  if (!isNum(ix.lr)) bad('the learning rate is missing')
  const data = ix.data as DataRecord
  if (!isObj(data) || !['files', 'dataset', 'memory'].includes(data.kind) || typeof data.fingerprint !== 'string' || !Array.isArray(data.files) || !Array.isArray(data.classNames)) bad('the data record is incomplete')
  if (data.classNames.length !== config.layers[config.layers.length - 1] || !data.classNames.every((c) => typeof c === 'string')) bad('the data record\'s class names do not fit the model')

  const files = ix.files as Record<string, FileRef>
  if (!isObj(files) || !isObj(files.tensors)) bad('the list of files is incomplete')
  const { tensors } = decodeTensors(await readRecordedFile(dir, files.tensors, 'the tensors', CHECKPOINT_INDEX, bad), join(dir, files.tensors.name))
  const snapshot = decodeSnapshot('', ix.run, tensors, Float32Array, bad)
  checkNoUnusedTensors(tensors, bad)
  const model = snapshot.model
  if (snapshot.released || !model || snapshot.stopReason !== null || snapshot.finished) return bad('the run is not one that can continue')
  if (snapshot.progress.epoch >= config.epochs) bad(`epoch ${snapshot.progress.epoch} is outside 0..${config.epochs - 1}`)
  if (model.rng === null) bad('the model state lacks its generator')
  // every tensor against the layers the configuration names
  const L = config.layers.length - 1
  const sizes = config.layers.slice(1).flatMap((n, l) => [config.layers[l] * n, n])
  const bn = config.batchNorm === true
  const normSizes = bn ? config.layers.slice(1, -1).flatMap((n) => [n, n, n, n]) : []
  const paramSizes = config.layers.slice(1).flatMap((n, l) => [config.layers[l] * n, n, ...(bn && l < L - 1 ? [n, n] : [])])
  const fits = (ws: Float32Array[] | undefined, name: string, want = sizes) => {
    if (ws && (ws.length !== want.length || ws.some((w, k) => w.length !== want[k]))) bad(`${name} do not fit layers [${config.layers}]${bn ? ' with batch norm' : ''}`)
  }
  fits(model.weights, 'the weights')
  fits(model.norm ?? [], 'the norm state', normSizes)
  // the Run keeps the norm state after the weights (sources.ts modelParams)
  fits(snapshot.best, 'the best weights', [...sizes, ...normSizes])
  if (model.m.length) fits(model.m, 'the first moments', paramSizes)
  if (model.v.length) fits(model.v, 'the second moments', paramSizes)
  return { config, data, lr: ix.lr, snapshot: snapshot as Checkpoint['snapshot'], createdAt: ix.createdAt }
}
