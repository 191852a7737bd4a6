/**
 * Trained models on disk, in the safetensors format (https://github.com/huggingface/safetensors).
 *
 * Why safetensors: a small documented container that Python (safetensors, numpy, torch) reads
 * without kana-native, and that holds nothing executable (unlike pickle). Layout:
 *   u64 little-endian N | N bytes of UTF-8 JSON header, space-padded to a multiple of 8 so the
 *   data starts 8-byte aligned | raw little-endian tensor bytes, contiguous.
 * Tensors are `layers.{l}.weight`, shape [in, out], row-major (W[i*out + j] joins input i to
 * output j: the engine's own layout, so nothing is transposed) and `layers.{l}.bias`, shape [out],
 * all F32, l = 0, 1, … from the input. With batch norm (version 2), every hidden layer l also has
 * `layers.{l}.bn.weight` (γ), `layers.{l}.bn.bias` (β), `layers.{l}.bn.running_mean` and
 * `layers.{l}.bn.running_var`, shape [out] (PyTorch BatchNorm1d's names). Everything else a model
 * needs (layer sizes, activation, batch norm's ε, class names, input normalisation `pixels / 255`)
 * is JSON in `__metadata__["kana-native"]`, because safetensors metadata values may only be strings.
 *
 * Versions: 1 (ReLU, no batch norm) and 2 (adds `activation` relu | leaky-relu | silu | gelu,
 * `leakySlope` for leaky-relu, `batchNorm` with `bnEps`, and `dropout` — the training's rates per
 * hidden layer, for information: inference never drops). Version-1 files still load, as ReLU
 * models without batch norm; files are written as version 2.
 *
 * Reading trusts nothing: a model may come from another tool, another version or a broken copy,
 * so every inconsistency is a ModelFileError that names the file and the problem.
 */
import { promises as fsp } from 'node:fs';
import { writeFileAtomic } from './atomic';
import { trainingRecordProblem } from '../training/config';
import { classNameProblem } from '../data/classmap';

export const MODEL_FORMAT = 'kana-native-model';
/** The version written; READ_VERSIONS are those read. */
export const MODEL_VERSION = 2;
const READ_VERSIONS = [1, 2] as const;
export type ModelActivation = 'relu' | 'leaky-relu' | 'silu' | 'gelu';
const ACTIVATIONS: readonly ModelActivation[] = ['relu', 'leaky-relu', 'silu', 'gelu'];
const META_KEY = 'kana-native';
/** The reference implementation's limit: a larger header length is corruption, not a model. */
const MAX_HEADER = 100_000_000;
/** Typed arrays use host byte order; the file is little-endian. */
const HOST_LE = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;

export interface ModelMeta {
  layers: number[];
  /** Hidden activation, default 'relu'. */
  activation?: ModelActivation;
  /** leaky-relu's slope for x ≤ 0 (default 0.01); not written for other activations. */
  leakySlope?: number;
  /** Batch norm on every hidden layer: then `norm` holds γ, β and the running statistics. Default false. */
  batchNorm?: boolean;
  /** Batch norm's ε (default 1e-5); not written without batch norm. */
  bnEps?: number;
  /** Dropout rate(s) used in training, recorded per hidden layer for information. */
  dropout?: number | number[];
  classNames?: string[];
  inputShape?: [number, number];
  training?: Record<string, unknown>;
  metrics?: Record<string, unknown>;
  seed?: number;
  createdAt?: string;
}

export interface ModelFile {
  meta: Omit<ModelMeta, 'dropout'> & {
    format: 'kana-native-model';
    /** The file's version (1 or 2). */
    version: 1 | 2;
    activation: ModelActivation;
    batchNorm: boolean;
    /** Per hidden layer, when recorded. */
    dropout?: number[];
    output: 'softmax';
    /** Inputs are `pixels / 255`. */
    normalization: { divideBy: 255 };
  };
  /** [W0, b0, W1, b1, …], fresh (aligned, unshared) arrays. */
  weights: Float32Array[];
  /** MLP.getNormState()'s layout: [γ, β, running mean, running variance] per hidden layer; empty without batch norm. */
  norm: Float32Array[];
}

/** A model file that is unreadable, inconsistent or not a kana-native model (or bad input to save). */
export class ModelFileError extends Error {
  /** Stable machine-readable reason, e.g. 'EHEADER', 'ESHAPE', 'ENONFINITE'. */
  readonly code: string;
  readonly file?: string;
  constructor(code: string, message: string, file?: string, options?: ErrorOptions) {
    super(file === undefined ? message : `${file}: ${message}`, options);
    this.name = 'ModelFileError';
    this.code = code;
    this.file = file;
  }
}

type Fail = (code: string, message: string) => never;

function failer(file: string | undefined): Fail {
  return (code, message) => { throw new ModelFileError(code, message, file); };
}

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** A value for a message, clipped: fields in a corrupt file can be arbitrarily large. */
function show(v: unknown): string {
  let s: string;
  // Both can throw (RangeError) on the deeply nested arrays a hostile header can hold.
  try { s = JSON.stringify(v) ?? String(v); } catch { s = Array.isArray(v) ? '(a deeply nested array)' : '(unprintable value)'; }
  return s.length > 60 ? `${s.slice(0, 57)}...` : s;
}

interface TensorSpec { name: string; shape: number[]; numel: number; norm: boolean }

const BN_TENSORS = ['weight', 'bias', 'running_mean', 'running_var'] as const;

/** The tensors of a model, in file order: per layer weight, bias, then (hidden layers, batch norm) bn.*. */
function tensorSpecs(layers: number[], batchNorm: boolean): TensorSpec[] {
  const specs: TensorSpec[] = [];
  for (let l = 0; l + 1 < layers.length; l++) {
    const [i, o] = [layers[l], layers[l + 1]];
    specs.push({ name: `layers.${l}.weight`, shape: [i, o], numel: i * o, norm: false });
    specs.push({ name: `layers.${l}.bias`, shape: [o], numel: o, norm: false });
    if (batchNorm && l + 2 < layers.length) {
      for (const t of BN_TENSORS) specs.push({ name: `layers.${l}.bn.${t}`, shape: [o], numel: o, norm: true });
    }
  }
  return specs;
}

/** Checks the kana-native metadata (read from a file, or about to be written) field by field. */
function checkMeta(m: unknown, fail: Fail): ModelFile['meta'] {
  if (!isRecord(m)) fail('EMETA', `__metadata__["${META_KEY}"] is not a JSON object`);
  if (m.format !== MODEL_FORMAT) fail('EFORMAT', `unknown format ${show(m.format)}: expected "${MODEL_FORMAT}"`);
  if (!READ_VERSIONS.includes(m.version as 1 | 2)) {
    fail('EVERSION', `model file version ${show(m.version)} is not supported: this build of kana-native reads versions ${READ_VERSIONS.join(' and ')}`);
  }
  const version = m.version as 1 | 2;
  const layers = m.layers;
  if (!Array.isArray(layers) || layers.length < 2 || !layers.every((n) => Number.isSafeInteger(n) && n > 0)) {
    fail('ELAYERS', `layers must be at least 2 positive integers (input, …, classes), got ${show(layers)}`);
  }
  const out = layers[layers.length - 1] as number;
  const hidden = layers.length - 2;
  if (version === 1) {
    if (m.activation !== 'relu') fail('EUNSUPPORTED', `activation ${show(m.activation)} is not supported in a version-1 file (only "relu")`);
    for (const key of ['leakySlope', 'batchNorm', 'bnEps', 'dropout']) {
      if (Object.hasOwn(m, key)) fail('EMETA', `${key} is a version-2 field, but the file says version 1`);
    }
  } else if (!ACTIVATIONS.includes(m.activation as ModelActivation)) {
    fail('EUNSUPPORTED', `activation ${show(m.activation)} is not supported (one of ${ACTIVATIONS.map((a) => `"${a}"`).join(', ')})`);
  }
  if (m.output !== 'softmax') fail('EUNSUPPORTED', `output ${show(m.output)} is not supported (only "softmax")`);
  if (!isRecord(m.normalization) || m.normalization.divideBy !== 255) {
    fail('EUNSUPPORTED', `normalization ${show(m.normalization)} is not supported (only {"divideBy":255}: pixels / 255)`);
  }
  const activation = m.activation as ModelActivation;
  const meta: ModelFile['meta'] = {
    format: MODEL_FORMAT, version, layers: [...layers] as number[],
    activation, batchNorm: false, output: 'softmax', normalization: { divideBy: 255 },
  };
  if (version === 2) {
    const { leakySlope, batchNorm, bnEps, dropout } = m;
    if (activation === 'leaky-relu') {
      if (typeof leakySlope !== 'number' || !Number.isFinite(leakySlope) || leakySlope < 0) fail('EMETA', `leakySlope ${show(leakySlope)} is not a finite number >= 0 (activation "leaky-relu" needs it)`);
      meta.leakySlope = leakySlope;
    } else if (leakySlope !== undefined) {
      fail('EMETA', `leakySlope is given but the activation is ${show(activation)}, not "leaky-relu"`);
    }
    if (typeof batchNorm !== 'boolean') fail('EMETA', `batchNorm ${show(batchNorm)} is not true or false`);
    meta.batchNorm = batchNorm;
    if (batchNorm) {
      if (typeof bnEps !== 'number' || !Number.isFinite(bnEps) || bnEps <= 0) fail('EMETA', `bnEps ${show(bnEps)} is not a finite number > 0 (batch norm needs it)`);
      meta.bnEps = bnEps;
    } else if (bnEps !== undefined) {
      fail('EMETA', 'bnEps is given but batchNorm is false');
    }
    if (dropout !== undefined) {
      if (!Array.isArray(dropout) || dropout.length !== hidden || !dropout.every((p) => typeof p === 'number' && p >= 0 && p < 1)) {
        fail('EMETA', `dropout ${show(dropout)} is not ${hidden} rates in [0, 1), one per hidden layer`);
      }
      meta.dropout = [...dropout];
    }
  }
  const { inputShape, classNames, training, metrics, seed, createdAt } = m;
  if (inputShape !== undefined) {
    if (!Array.isArray(inputShape) || inputShape.length !== 2 || !inputShape.every((n) => Number.isSafeInteger(n) && n > 0)
      || inputShape[0] * inputShape[1] !== layers[0]) {
      fail('EMETA', `inputShape ${show(inputShape)} is not [height, width] with height × width = ${layers[0]} inputs`);
    }
    meta.inputShape = [inputShape[0], inputShape[1]];
  }
  if (classNames !== undefined) {
    if (!Array.isArray(classNames) || !classNames.every((c) => typeof c === 'string')) fail('EMETA', 'classNames is not an array of strings');
    if (classNames.length !== out) fail('ECLASSNAMES', `${classNames.length} classNames for ${out} output classes`);
    classNames.forEach((c, k) => { const problem = classNameProblem(c); if (problem) fail('ECLASSNAMES', `classNames[${k}] ${problem}`); });
    meta.classNames = [...classNames];
  }
  if (training !== undefined) {
    if (!isRecord(training)) fail('EMETA', 'training is not a JSON object');
    const problem = trainingRecordProblem(training);
    if (problem !== undefined) fail('EMETA', `training: ${problem}`);
    meta.training = training;
  }
  if (metrics !== undefined) {
    if (!isRecord(metrics)) fail('EMETA', 'metrics is not a JSON object');
    meta.metrics = metrics;
  }
  if (seed !== undefined) {
    if (!Number.isSafeInteger(seed) || (seed as number) < 0) fail('EMETA', `seed ${show(seed)} is not a non-negative integer`);
    meta.seed = seed as number;
  }
  if (createdAt !== undefined) {
    if (typeof createdAt !== 'string' || Number.isNaN(Date.parse(createdAt))) fail('EMETA', `createdAt ${show(createdAt)} is not an ISO date`);
    meta.createdAt = createdAt;
  }
  return meta;
}

function checkValues(s: TensorSpec, w: Float32Array, fail: Fail): void {
  const cols = s.shape.length === 2 ? s.shape[1] : undefined;
  for (let k = 0; k < w.length; k++) {
    if (!Number.isFinite(w[k])) {
      const where = cols === undefined ? '' : ` (input ${Math.floor(k / cols)}, output ${k % cols})`;
      fail('ENONFINITE', `tensor "${s.name}" has ${w[k]} at index ${k}${where}: ${s.norm ? 'batch-norm parameters and statistics' : 'weights'} must be finite`);
    }
  }
  // sqrt(var + ε) of a negative variance is NaN; a zero one divides by √ε: neither comes from training.
  if (s.name.endsWith('.bn.running_var')) {
    for (let k = 0; k < w.length; k++) {
      if (!(w[k] > 0)) fail('EVARIANCE', `tensor "${s.name}" has ${w[k]} at index ${k}: a running variance must be > 0`);
    }
  }
}

/**
 * Serialises a model to safetensors bytes (version 2); validates the metadata, weights and norm
 * state first. `norm` is MLP.getNormState(): [γ, β, running mean, running variance] per hidden
 * layer with batch norm, empty (the default) without.
 */
export function encodeModel(meta: ModelMeta, weights: Float32Array[], norm: Float32Array[] = []): Uint8Array {
  return encode(meta, weights, norm, undefined);
}

function encode(meta: ModelMeta, weights: Float32Array[], norm: Float32Array[], file: string | undefined): Uint8Array {
  const fail: Fail = failer(file);
  if (!isRecord(meta)) fail('EMETA', 'meta is not an object');
  // What only matters for some settings is written only with them: leakySlope with leaky-relu,
  // bnEps with batch norm. One dropout rate stands for every hidden layer.
  const activation = meta.activation ?? 'relu';
  const batchNorm = meta.batchNorm ?? false;
  const hidden = Array.isArray(meta.layers) ? Math.max(meta.layers.length - 2, 0) : 0;
  const full = checkMeta({
    format: MODEL_FORMAT, version: MODEL_VERSION, layers: meta.layers, activation,
    leakySlope: activation === 'leaky-relu' ? meta.leakySlope ?? 0.01 : undefined,
    batchNorm, bnEps: batchNorm === true ? meta.bnEps ?? 1e-5 : undefined,
    dropout: typeof meta.dropout === 'number' ? new Array<number>(hidden).fill(meta.dropout) : meta.dropout,
    output: 'softmax', normalization: { divideBy: 255 }, inputShape: meta.inputShape, classNames: meta.classNames,
    training: meta.training, metrics: meta.metrics, seed: meta.seed, createdAt: meta.createdAt ?? new Date().toISOString(),
  }, fail);
  const all = tensorSpecs(full.layers, full.batchNorm);
  const specs = all.filter((s) => !s.norm);
  const normSpecs = all.filter((s) => s.norm);
  if (!Array.isArray(weights) || weights.length !== specs.length) {
    fail('EWEIGHTS', `layers [${full.layers}] need ${specs.length} weight arrays [W0, b0, …], got ${Array.isArray(weights) ? weights.length : show(weights)}`);
  }
  if (!Array.isArray(norm) || norm.length !== normSpecs.length) {
    fail('EWEIGHTS', full.batchNorm
      ? `batch norm on layers [${full.layers}] needs ${normSpecs.length} norm arrays [γ, β, running mean, running variance] per hidden layer, got ${Array.isArray(norm) ? norm.length : show(norm)}`
      : `${Array.isArray(norm) ? norm.length : show(norm)} norm arrays given, but batchNorm is off`);
  }
  // File order: a layer's weight and bias, then its batch-norm tensors.
  const arrays: Float32Array[] = [];
  let [wk, nk] = [0, 0];
  for (const s of all) arrays.push(s.norm ? norm[nk++] : weights[wk++]);
  let metaJson: string;
  try { metaJson = JSON.stringify(full); } catch (e) { fail('EMETA', `metadata is not JSON-serialisable (${(e as Error).message})`); }
  const header: Record<string, unknown> = { __metadata__: { [META_KEY]: metaJson } };
  let size = 0;
  all.forEach((s, k) => {
    const w = arrays[k];
    const what = s.norm ? `norm[${normSpecs.indexOf(s)}]` : `weights[${specs.indexOf(s)}]`;
    if (!(w instanceof Float32Array)) fail('EWEIGHTS', `${what} (${s.name}) is not a Float32Array`);
    if (w.length !== s.numel) fail('ESHAPE', `${what} (${s.name}) has ${w.length} values, shape [${s.shape}] needs ${s.numel}`);
    checkValues(s, w, fail);
    header[s.name] = { dtype: 'F32', shape: s.shape, data_offsets: [size, size + 4 * s.numel] };
    size += 4 * s.numel;
  });
  const json = new TextEncoder().encode(JSON.stringify(header));
  const padded = Math.ceil(json.length / 8) * 8; // the format's alignment rule: data starts at a multiple of 8
  const bytes = new Uint8Array(8 + padded + size);
  new DataView(bytes.buffer).setBigUint64(0, BigInt(padded), true);
  bytes.set(json, 8);
  bytes.fill(0x20, 8 + json.length, 8 + padded);
  let pos = 8 + padded;
  for (const w of arrays) {
    if (HOST_LE) bytes.set(new Uint8Array(w.buffer, w.byteOffset, w.byteLength), pos);
    else { const v = new DataView(bytes.buffer, pos, w.byteLength); w.forEach((x, i) => v.setFloat32(4 * i, x, true)); }
    pos += w.byteLength;
  }
  return bytes;
}

interface Span { name: string; begin: number; end: number }

/** Parses and validates safetensors bytes as a kana-native model; `file` is only for messages. */
export function decodeModel(bytes: Uint8Array, file?: string): ModelFile {
  const fail: Fail = failer(file);
  if (!(bytes instanceof Uint8Array)) throw new TypeError('decodeModel: bytes must be a Uint8Array');
  if (bytes.length < 8) fail('ETOOSHORT', `file is ${bytes.length} bytes, too short for the 8-byte safetensors header length: not a model file`);
  const n64 = new DataView(bytes.buffer, bytes.byteOffset, 8).getBigUint64(0, true);
  if (n64 > BigInt(MAX_HEADER)) fail('EHEADERLEN', `header length ${n64} is absurd (over ${MAX_HEADER} bytes): not a safetensors file, or a corrupt one`);
  const n = Number(n64);
  if (8 + n > bytes.length) fail('EHEADERLEN', `header length ${n} runs past the end of the ${bytes.length}-byte file: truncated, or not a safetensors file`);

  const header = parseHeader(bytes.subarray(8, 8 + n), fail);
  if (!Object.hasOwn(header, '__metadata__')) fail('ENOMETA', 'no "__metadata__" in the header: safetensors, but not saved by kana-native');
  const md = header.__metadata__;
  if (!isRecord(md)) fail('EMETA', '"__metadata__" is not a JSON object');
  for (const [k, v] of Object.entries(md)) {
    if (typeof v !== 'string') fail('EMETA', `__metadata__[${show(k)}] is not a string (safetensors metadata values must be strings)`);
  }
  if (!Object.hasOwn(md, META_KEY)) fail('ENOMETA', `no "${META_KEY}" entry in __metadata__: safetensors, but not saved by kana-native`);
  let raw: unknown;
  try { raw = JSON.parse(md[META_KEY] as string); } catch (e) { fail('EMETA', `__metadata__["${META_KEY}"] is not valid JSON (${(e as Error).message})`); }
  const meta = checkMeta(raw, fail);

  const specs = tensorSpecs(meta.layers, meta.batchNorm);
  const bn = meta.batchNorm ? ' with batch norm' : '';
  for (const s of specs) {
    if (!Object.hasOwn(header, s.name)) fail('EMISSING', `tensor "${s.name}" is missing (layers [${meta.layers}]${bn} need ${specs.length} tensors)`);
  }
  const expected = new Set(specs.map((s) => s.name));
  for (const key of Object.keys(header)) {
    if (key !== '__metadata__' && !expected.has(key)) {
      const why = !meta.batchNorm && /\.bn\./.test(key) ? 'batchNorm is off in the metadata' : `layers [${meta.layers}]${bn} have no such parameter`;
      fail('EEXTRA', `unexpected tensor ${show(key)} (${why})`);
    }
  }

  const dataStart = 8 + n;
  const dataLen = bytes.length - dataStart;
  const spans = specs.map((s) => checkTensor(s, header[s.name], dataLen, fail));
  // Offsets may come in any order (the reference writer sorts by name, so layers.10 precedes
  // layers.2); what matters is that the tensors tile the data section exactly.
  const sorted = [...spans].sort((a, b) => a.begin - b.begin);
  let pos = 0;
  sorted.forEach((s, k) => {
    if (s.begin < pos) fail('EOFFSETS', `tensors "${sorted[k - 1].name}" and "${s.name}" overlap in the data section (bytes ${s.begin}–${pos})`);
    if (s.begin > pos) fail('EOFFSETS', `data is not contiguous: bytes ${pos}–${s.begin} of the data section, before "${s.name}", belong to no tensor`);
    pos = s.end;
  });
  if (pos !== dataLen) fail('ETRAILING', `${dataLen - pos} trailing bytes after the last tensor`);

  const arrays = specs.map((s, k) => {
    const w = new Float32Array(s.numel); // a copy: the file's offsets need not be 4-byte aligned
    const src = bytes.subarray(dataStart + spans[k].begin, dataStart + spans[k].end);
    if (HOST_LE) new Uint8Array(w.buffer).set(src);
    else { const v = new DataView(src.buffer, src.byteOffset, src.byteLength); for (let i = 0; i < w.length; i++) w[i] = v.getFloat32(4 * i, true); }
    checkValues(s, w, fail);
    return w;
  });
  return { meta, weights: arrays.filter((_, k) => !specs[k].norm), norm: arrays.filter((_, k) => specs[k].norm) };
}

function parseHeader(raw: Uint8Array, fail: Fail): Record<string, unknown> {
  if (raw.length === 0) fail('EHEADER', 'header is empty');
  if (raw[0] !== 0x7b) fail('EHEADER', 'header does not start with "{": not a safetensors file');
  let text: string;
  try { text = new TextDecoder('utf-8', { fatal: true }).decode(raw); } catch { fail('EHEADER', 'header is not valid UTF-8'); }
  let header: unknown;
  try { header = JSON.parse(text); } catch (e) { fail('EHEADER', `header is not valid JSON (${(e as Error).message})`); }
  if (!isRecord(header)) fail('EHEADER', 'header is not a JSON object');
  return header;
}

function checkTensor(s: TensorSpec, info: unknown, dataLen: number, fail: Fail): Span {
  const t = `tensor "${s.name}"`;
  if (!isRecord(info)) fail('EHEADER', `${t}: header entry is not a JSON object`);
  if (info.dtype !== 'F32') fail('EDTYPE', `${t} has dtype ${show(info.dtype)}: kana-native models are F32 only`);
  const shape = info.shape;
  if (!Array.isArray(shape) || shape.length !== s.shape.length || shape.some((d, i) => d !== s.shape[i])) {
    fail('ESHAPE', `${t} has shape ${show(shape)}, the layers in the metadata need [${s.shape}]`);
  }
  const off = info.data_offsets;
  if (!Array.isArray(off) || off.length !== 2 || !off.every((x) => Number.isSafeInteger(x) && x >= 0)) {
    fail('EOFFSETS', `${t}: data_offsets ${show(off)} is not a pair of non-negative integers`);
  }
  const [begin, end] = off as [number, number];
  if (end < begin) fail('EOFFSETS', `${t}: data_offsets end ${end} is before begin ${begin}`);
  if (end - begin !== 4 * s.numel) fail('EOFFSETS', `${t}: data_offsets [${begin}, ${end}] span ${end - begin} bytes, shape [${s.shape}] of F32 needs ${4 * s.numel}`);
  if (end > dataLen) fail('EOFFSETS', `${t}: data_offsets [${begin}, ${end}] run past the end of the ${dataLen}-byte data section: truncated file?`);
  return { name: s.name, begin, end };
}

/** Writes the model atomically (a crash leaves the old file or the new one, never half of one). */
export async function saveModel(path: string, meta: ModelMeta, weights: Float32Array[], norm: Float32Array[] = []): Promise<void> {
  await writeFileAtomic(path, encode(meta, weights, norm, path));
}

export async function loadModel(path: string): Promise<ModelFile> {
  let bytes: Uint8Array;
  try {
    bytes = await fsp.readFile(path);
  } catch (err) {
    const e = err as NodeJS.ErrnoException;
    const why = e.code === 'ENOENT' ? 'no such file' : e.code === 'EISDIR' ? 'is a directory, not a model file' : `cannot read (${e.message})`;
    throw new ModelFileError(e.code ?? 'EIO', why, path, { cause: err });
  }
  return decodeModel(bytes, path);
}
