// Checkpoints of an interrupted training run, so that `train --resume RUN_DIR` continues it to
// exactly the result an uninterrupted run gives.
//
//   RUN_DIR/checkpoint/
//     checkpoint.json            the index, written last and renamed into place: no index, no checkpoint
//     weights.<id>.safetensors   the weights at the interruption (the model-file format)
//     best.<id>.safetensors      the weights of the best validation epoch so far (once one improved)
//     state.<id>.safetensors     Adam's moments `m.{k}`, `v.{k}` (F32) and the unfinished epoch's
//                                permutation `partialEpoch.order` (U32), safetensors as well
//
// Every checkpoint writes its data files under fresh names (<id>) and only then replaces
// checkpoint.json, which records each file's size and SHA-256; files of older checkpoints are
// removed afterwards. A crash at any moment therefore leaves the previous checkpoint or the new
// one, never a mix, and a damaged file is refused by its hash instead of silently resuming wrong.
//
// checkpoint.json holds the rest: the epoch index and phase (training, or training done and
// validation pending), the rate of that epoch (the schedule's position), the running sums of the
// unfinished epoch, the generator state and step count, the early-stopping state, the history so
// far, the resolved configuration and where the data came from with a fingerprint of it.
// JSON carries every float64 exactly (shortest round-trip form), so the sums resume bit for bit.
import { createHash, randomBytes } from 'node:crypto'
import { promises as fsp } from 'node:fs'
import { join } from 'node:path'
import { writeFileAtomic } from '../output/atomic'
import { decodeModel, encodeModel } from '../output/model-file'
import { EarlyStopping, type EarlyStoppingState } from './early-stopping'
import type { TrainingState } from '../engine/mlp'
import type { Inputs } from '../data/inputs'
import type { EpochRecord, ResolvedConfig } from './records'
import { checkModelConfig } from './config'

export const CHECKPOINT_DIR = 'checkpoint'
export const CHECKPOINT_INDEX = 'checkpoint.json'
export const CHECKPOINT_FORMAT = 'kana-native-checkpoint'
export const CHECKPOINT_VERSION = 1
const STATE_FORMAT = 'kana-native-training-state'
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

export interface PendingFit {
  loss: number
  accuracy: number
  steps: number
}

export interface Checkpoint {
  /** 0-based index of the epoch in progress; its rate is `lr`. */
  epoch: number
  /** 'train': the epoch's optimiser steps are (partly) to do; 'validate': they are done, validation is not. */
  phase: 'train' | 'validate'
  lr: number
  /** Phase 'validate': what the epoch's training reported. */
  pendingFit?: PendingFit
  /** Time spent in the unfinished epoch, and in the whole run, before the interruption. */
  epochSeconds: number
  seconds: number
  earlyStopping: EarlyStoppingState
  history: EpochRecord[]
  config: ResolvedConfig
  data: DataRecord
  weights: Float32Array[]
  /** Weights of the best validation epoch so far (earlyStopping.bestEpoch), when any improved. */
  best?: Float32Array[]
  training: TrainingState
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
// (a diverged trial's loss) are written as the strings "NaN", "Infinity", "-Infinity".

const NON_FINITE: Record<string, number> = { NaN: NaN, Infinity: Infinity, '-Infinity': -Infinity }
const encodeNumbers = (_: string, x: unknown) => (typeof x === 'number' && !Number.isFinite(x) ? String(x) : x)
const textOf = (v: unknown) => JSON.stringify(v, encodeNumbers, 1)

/** `obj` as JSON text with an `integrity` field (SHA-256 of the text without it) at the end. */
export function sealJson(obj: Record<string, unknown>): string {
  return textOf({ ...obj, integrity: sha256(new TextEncoder().encode(textOf(obj))) }) + '\n'
}

/** Parses sealed JSON and checks its integrity; `bad` is called with the reason when it fails. */
export function openSealedJson(text: string, name: string, bad: (why: string) => never): Record<string, any> {
  let v: unknown
  try {
    v = JSON.parse(text, (_, x) => (typeof x === 'string' && x in NON_FINITE ? NON_FINITE[x] : x))
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

export function decodeTensors(bytes: Uint8Array, file: string): { meta: Record<string, unknown>; tensors: Map<string, Tensor> } {
  const bad = (why: string): never => { throw new CheckpointError('ECORRUPT', `${file}: ${why}`) }
  if (bytes.length < 8) bad('too short')
  const n = Number(new DataView(bytes.buffer, bytes.byteOffset, 8).getBigUint64(0, true))
  if (!(n > 0 && 8 + n <= bytes.length)) bad('bad header length')
  let header: Record<string, any>
  try { header = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(bytes.subarray(8, 8 + n))) } catch { return bad('header is not JSON') }
  if (typeof header !== 'object' || header === null || Array.isArray(header)) bad('header is not an object')
  const meta = (header as Record<string, any>).__metadata__
  if (typeof meta !== 'object' || meta === null) bad('no __metadata__')
  const start = 8 + n
  const tensors = new Map<string, Tensor>()
  let end = 0
  for (const [name, info] of Object.entries(header)) {
    if (name === '__metadata__') continue
    const { dtype, shape, data_offsets: off } = info ?? {}
    if ((dtype !== 'F32' && dtype !== 'U32' && dtype !== 'F64') || !Array.isArray(shape) || shape.length !== 1 || !Number.isSafeInteger(shape[0]) || shape[0] < 0 || !Array.isArray(off) || off.length !== 2) bad(`tensor "${name}" has a bad header entry`)
    const [a, b] = off as number[]
    const width = dtype === 'F64' ? 8 : 4
    if (!Number.isSafeInteger(a) || !Number.isSafeInteger(b) || a < 0 || b - a !== width * shape[0] || start + b > bytes.length) bad(`tensor "${name}" has bad offsets`)
    const t = dtype === 'F32' ? new Float32Array(shape[0]) : dtype === 'F64' ? new Float64Array(shape[0]) : new Uint32Array(shape[0])
    const src = bytes.subarray(start + a, start + b)
    if (HOST_LE) new Uint8Array(t.buffer).set(src)
    else { const v = new DataView(src.buffer, src.byteOffset, src.byteLength); for (let i = 0; i < t.length; i++) t[i] = dtype === 'F32' ? v.getFloat32(4 * i, true) : dtype === 'F64' ? v.getFloat64(8 * i, true) : v.getUint32(4 * i, true) }
    tensors.set(name, t)
    end = Math.max(end, b)
  }
  if (start + end !== bytes.length) bad('trailing bytes')
  return { meta, tensors }
}

// ---------------------------------------------------------------------------------------------
// The mechanics both kinds of checkpoint share (train's here, the experiment's in
// experiment-checkpoint.ts): data files under fresh names first, then the sealed index that names
// them, renamed into place, then the older files removed; on reading, each file checked against
// the size and SHA-256 its index records.

/**
 * Writes `data` (key → bytes) as `<key>.<id>.safetensors` into `dir`, then the index that
 * `index(files)` returns, sealed, as `indexName`; removes the data files of older checkpoints.
 */
export async function commitCheckpoint(dir: string, indexName: string, data: [string, Uint8Array][], index: (files: Record<string, FileRef>) => Record<string, unknown>): Promise<void> {
  await fsp.mkdir(dir, { recursive: true })
  const id = `${Date.now().toString(36)}-${randomBytes(4).toString('hex')}`
  const files: Record<string, FileRef> = {}
  for (const [key, bytes] of data) {
    const name = `${key}.${id}.safetensors`
    await writeFileAtomic(join(dir, name), bytes)
    files[key] = { name, size: bytes.length, sha256: sha256(bytes) }
  }
  await writeFileAtomic(join(dir, indexName), sealJson(index(files)))
  // Now the older checkpoint's files are unreferenced.
  const keep = new Set(Object.values(files).map((f) => f.name))
  for (const f of await fsp.readdir(dir)) {
    if (f.endsWith('.safetensors') && !keep.has(f)) await fsp.rm(join(dir, f), { force: true }).catch(() => {})
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
const isNum = (v: unknown): v is number => typeof v === 'number' && Number.isFinite(v)
export const isInt = (v: unknown, min = 0): v is number => Number.isSafeInteger(v) && (v as number) >= min

// ---------------------------------------------------------------------------------------------
// Writing

const stateMeta = (layers: number[]) => ({ 'kana-native': JSON.stringify({ format: STATE_FORMAT, version: CHECKPOINT_VERSION, layers }) })

/** Writes a checkpoint into RUN_DIR/checkpoint/ (data files first, checkpoint.json last); returns that folder. */
export async function writeCheckpoint(runDir: string, c: Checkpoint): Promise<string> {
  const dir = join(runDir, CHECKPOINT_DIR)
  const { layers, seed } = c.config
  const { m, v, partialEpoch } = c.training
  const tensors: [string, Tensor][] = [
    ...m.map((t, k): [string, Tensor] => [`m.${k}`, t]),
    ...v.map((t, k): [string, Tensor] => [`v.${k}`, t]),
  ]
  if (partialEpoch) tensors.push(['partialEpoch.order', partialEpoch.order])
  const data: [string, Uint8Array][] = [['weights', encodeModel({ layers, seed, classNames: c.data.classNames }, c.weights)]]
  if (c.best) data.push(['best', encodeModel({ layers, seed, classNames: c.data.classNames }, c.best)])
  data.push(['state', encodeTensors(tensors, stateMeta(layers))])
  await commitCheckpoint(dir, CHECKPOINT_INDEX, data, (files) => ({
    format: CHECKPOINT_FORMAT,
    version: CHECKPOINT_VERSION,
    createdAt: new Date().toISOString(),
    epoch: c.epoch,
    phase: c.phase,
    lr: c.lr,
    pendingFit: c.pendingFit ?? null,
    epochSeconds: c.epochSeconds,
    seconds: c.seconds,
    earlyStopping: c.earlyStopping,
    history: c.history,
    config: c.config,
    data: c.data,
    training: {
      step: c.training.step,
      rng: c.training.rng,
      moments: m.length,
      partialEpoch: partialEpoch && { batchSize: partialEpoch.batchSize, nextStep: partialEpoch.nextStep, loss: partialEpoch.loss, correct: partialEpoch.correct, length: partialEpoch.order.length },
    },
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

// ---------------------------------------------------------------------------------------------
// Reading

/** Reads and checks RUN_DIR/checkpoint/: every field, every file's size and hash, every shape. */
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
  try {
    checkModelConfig({ ...config, hidden: config.layers.slice(1, -1) })
  } catch (e) {
    bad(`config: ${(e as Error).message}`)
  }
  const sp = config.split
  if (!isObj(sp) || ![sp.train, sp.validation, sp.test].every((x) => typeof x === 'number' && x >= 0 && Number.isFinite(x)) || !(sp.train > 0) || Math.abs(sp.train + sp.validation + sp.test - 1) > 1e-9) bad('config: the split is malformed')
  if (!isInt(ix.epoch) || ix.epoch >= config.epochs) bad(`epoch ${ix.epoch} is outside 0..${config.epochs - 1}`)
  if (ix.phase !== 'train' && ix.phase !== 'validate') bad(`phase ${ix.phase} is unknown`)
  if (!isNum(ix.lr) || !isNum(ix.epochSeconds) || !isNum(ix.seconds)) bad('lr or timings are missing')
  let pendingFit: PendingFit | undefined
  if (ix.phase === 'validate') {
    const p = ix.pendingFit
    if (!isObj(p) || !isNum(p.loss) || !isNum(p.accuracy) || !isInt(p.steps, 1)) bad('the pending epoch result is missing')
    pendingFit = { loss: p.loss, accuracy: p.accuracy, steps: p.steps }
  }
  if (!Array.isArray(ix.history) || ix.history.length !== ix.epoch) bad(`the history holds ${ix.history?.length} epochs, the checkpoint is at epoch ${ix.epoch}`)
  ix.history.forEach((r: any, i: number) => {
    if (!isObj(r) || r.epoch !== i + 1 || !['lr', 'trainLoss', 'trainAccuracy', 'valLoss', 'valAccuracy', 'seconds'].every((k) => isNum(r[k]))) bad(`history entry ${i + 1} is malformed`)
  })
  let earlyStopping: EarlyStoppingState
  try { earlyStopping = EarlyStopping.fromJSON(ix.earlyStopping).toJSON() } catch (e) { return bad(`early stopping state: ${(e as Error).message}`) }
  const data = ix.data as DataRecord
  if (!isObj(data) || !['files', 'dataset', 'memory'].includes(data.kind) || typeof data.fingerprint !== 'string' || !Array.isArray(data.files) || !Array.isArray(data.classNames)) bad('the data record is incomplete')
  if (data.classNames.length !== config.layers[config.layers.length - 1] || !data.classNames.every((c) => typeof c === 'string')) bad('the data record\'s class names do not fit the model')
  const tr = ix.training
  if (!isObj(tr) || !isInt(tr.step) || typeof tr.rng !== 'string' || !/^\d+$/.test(tr.rng) || !isInt(tr.moments)) bad('the training state is incomplete')
  const pe = tr.partialEpoch
  if (pe !== null && (!isObj(pe) || !isInt(pe.batchSize, 1) || !isInt(pe.nextStep, 1) || !isNum(pe.loss) || !isInt(pe.correct) || !isInt(pe.length, 1))) bad('the unfinished epoch is malformed')
  if (pe !== null && ix.phase !== 'train') bad('an unfinished epoch in phase validate')

  const files = ix.files as Record<string, FileRef>
  if (!isObj(files) || !isObj(files.weights) || !isObj(files.state)) bad('the list of files is incomplete')
  const load = async (key: string): Promise<Uint8Array | undefined> => (files[key] === undefined ? undefined : readRecordedFile(dir, files[key], key, CHECKPOINT_INDEX, bad))
  const weightsOf = (bytes: Uint8Array, name: string) => {
    try {
      const f = decodeModel(bytes, name)
      if (f.meta.layers.join() !== config.layers.join()) bad(`${name} has layers [${f.meta.layers}], the config [${config.layers}]`)
      return f.weights
    } catch (e) {
      if (e instanceof CheckpointError) throw e
      return bad((e as Error).message)
    }
  }
  const weights = weightsOf((await load('weights'))!, files.weights.name)
  const bestBytes = await load('best')
  const best = bestBytes && weightsOf(bestBytes, files.best.name)
  if ((earlyStopping.bestEpoch >= 0) !== (best !== undefined)) bad('the best weights and the early-stopping state disagree')

  const { tensors } = decodeTensors((await load('state'))!, files.state.name)
  const params = 2 * (config.layers.length - 1)
  const moments = (prefix: string) => {
    const out: Float32Array[] = []
    for (let k = 0; k < tr.moments; k++) {
      const t = tensors.get(`${prefix}.${k}`)
      if (!(t instanceof Float32Array) || t.length !== weights[k].length) bad(`${prefix}.${k} is missing or has the wrong size`)
      out.push(t as Float32Array)
    }
    return out
  }
  if (tr.moments !== 0 && tr.moments !== params) bad(`${tr.moments} moment tensors for ${params} parameters`)
  const m = moments('m')
  const v = moments('v')
  let partialEpoch: TrainingState['partialEpoch'] = null
  if (pe !== null) {
    const order = tensors.get('partialEpoch.order')
    if (!(order instanceof Uint32Array) || order.length !== pe.length) bad('the unfinished epoch\'s order is missing or has the wrong size')
    partialEpoch = { order: order as Uint32Array, batchSize: pe.batchSize, nextStep: pe.nextStep, loss: pe.loss, correct: pe.correct }
  }
  return {
    epoch: ix.epoch, phase: ix.phase, lr: ix.lr, pendingFit, epochSeconds: ix.epochSeconds, seconds: ix.seconds,
    earlyStopping, history: ix.history, config, data, weights, best,
    training: { step: tr.step, rng: tr.rng, m, v, partialEpoch },
    createdAt: ix.createdAt,
  }
}
