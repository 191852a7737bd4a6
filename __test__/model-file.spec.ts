import test from 'ava';
import fc from 'fast-check';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';

import { decodeModel, encodeModel, loadModel, ModelFileError, saveModel } from '../src/output/model-file';
import type { ModelFile, ModelMeta } from '../src/output/model-file';
import { mulberry32 } from '../src/data/split';
import { encodeModelV1 } from './helpers/model-v1';

// ---------------------------------------------------------------------------------------------
// Helpers

/** Weights with awkward values too: -0, subnormals, extremes, so "bit-exact" means something. */
function randomWeights(layers: number[], seed: number): Float32Array[] {
  const rand = mulberry32(seed);
  const special = [-0, 1.4e-45, -1.17549435e-38, 3.4028234663852886e38, -3.4028234663852886e38, 1, -1];
  const out: Float32Array[] = [];
  for (let l = 0; l + 1 < layers.length; l++) {
    for (const n of [layers[l] * layers[l + 1], layers[l + 1]]) {
      out.push(Float32Array.from({ length: n }, (_, k) => (k < special.length && rand() < 0.5 ? special[k] : (rand() - 0.5) * 4)));
    }
  }
  return out;
}

/** Batch-norm state [γ, β, running mean, running variance] per hidden layer; variances > 0. */
function randomNorm(layers: number[], seed: number): Float32Array[] {
  const rand = mulberry32(seed);
  return layers.slice(1, -1).flatMap((n) => [
    Float32Array.from({ length: n }, () => 0.5 + rand()),
    Float32Array.from({ length: n }, () => rand() - 0.5),
    Float32Array.from({ length: n }, () => 2 * rand() - 1),
    Float32Array.from({ length: n }, () => 0.1 + rand()),
  ]);
}

function bitsEqual(a: Float32Array[], b: Float32Array[]): boolean {
  return a.length === b.length && a.every((x, k) => {
    const [u, v] = [new Uint32Array(x.buffer, x.byteOffset, x.length), new Uint32Array(b[k].buffer, b[k].byteOffset, b[k].length)];
    return u.length === v.length && u.every((bits, i) => bits === v[i]);
  });
}

/** An independent minimal safetensors reader: only the spec, none of src/model-file.ts. */
function miniRead(bytes: Uint8Array) {
  const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const n = Number(dv.getBigUint64(0, true));
  const headerText = Buffer.from(bytes.subarray(8, 8 + n)).toString('utf8');
  const header = JSON.parse(headerText) as Record<string, any>;
  const tensors: Record<string, { dtype: string; shape: number[]; offsets: [number, number]; values: number[] }> = {};
  for (const [name, info] of Object.entries(header)) {
    if (name === '__metadata__') continue;
    const [b, e] = info.data_offsets;
    const values: number[] = [];
    for (let p = 8 + n + b; p < 8 + n + e; p += 4) values.push(dv.getFloat32(p, true));
    tensors[name] = { dtype: info.dtype, shape: info.shape, offsets: [b, e], values };
  }
  return { n, headerText, header, tensors };
}

/** Splits a file into its parsed header and data section. */
function split(bytes: Uint8Array): { header: Record<string, any>; data: Uint8Array } {
  const n = Number(new DataView(bytes.buffer, bytes.byteOffset, 8).getBigUint64(0, true));
  return { header: JSON.parse(Buffer.from(bytes.subarray(8, 8 + n)).toString('utf8')), data: bytes.slice(8 + n) };
}

/** Builds a file from a header (object or exact text) and data; pads the header to 8 like the spec. */
function assemble(header: string | object, data: Uint8Array, pad = true): Uint8Array {
  let text = typeof header === 'string' ? header : JSON.stringify(header);
  if (pad) text += ' '.repeat((8 - (Buffer.byteLength(text) % 8)) % 8);
  const h = Buffer.from(text, 'utf8');
  const out = new Uint8Array(8 + h.length + data.length);
  new DataView(out.buffer).setBigUint64(0, BigInt(h.length), true);
  out.set(h, 8);
  out.set(data, 8 + h.length);
  return out;
}

function rewrite(bytes: Uint8Array, edit: (header: Record<string, any>, data: Uint8Array) => Uint8Array | void): Uint8Array {
  const { header, data } = split(bytes);
  const newData = edit(header, data) ?? data;
  return assemble(header, newData);
}

function rewriteMeta(bytes: Uint8Array, edit: (meta: Record<string, any>) => void): Uint8Array {
  return rewrite(bytes, (h) => {
    const m = JSON.parse(h.__metadata__['kana-native']);
    edit(m);
    h.__metadata__['kana-native'] = JSON.stringify(m);
  });
}

const LAYERS = [6, 4, 3];
const META: ModelMeta = { layers: LAYERS, classNames: ['お', 'き', 'す'], inputShape: [2, 3], seed: 7, createdAt: '2024-06-01T12:00:00.000Z' };
const VALID = encodeModel(META, randomWeights(LAYERS, 1));
const FILE = 'm.safetensors';

function rejects(t: any, bytes: Uint8Array, code: string, message: RegExp) {
  const e = t.throws(() => decodeModel(bytes, FILE), { instanceOf: ModelFileError }) as ModelFileError;
  t.is(e.code, code, e.message);
  t.is(e.file, FILE);
  t.true(e.message.startsWith(`${FILE}: `), e.message);
  t.regex(e.message, message);
}

// ---------------------------------------------------------------------------------------------
// Round trips and layout

test('round trip is bit-exact for several layer shapes', (t) => {
  for (const [k, layers] of [[1, 1], [2, 1], [784, 64, 10], [3, 5, 4, 2], [10, 1, 7], [4, 3, 3, 3, 3, 2]].entries()) {
    const weights = randomWeights(layers, 100 + k);
    const meta: ModelMeta = {
      layers, seed: 2 ** 47 - k, training: { lr: 0.01, optimizer: 'adam', nested: { epochs: [1, 2] } }, metrics: { accuracy: 0.93 },
      classNames: Array.from({ length: layers[layers.length - 1] }, (_, c) => `クラス${c}`),
    };
    const file = decodeModel(encodeModel(meta, weights));
    t.true(bitsEqual(file.weights, weights), `layers ${layers}`);
    const { createdAt, ...rest } = file.meta;
    t.deepEqual(rest, { format: 'kana-native-model', version: 2, activation: 'relu', batchNorm: false, output: 'softmax', normalization: { divideBy: 255 }, ...meta });
    t.deepEqual(file.norm, []);
    t.is(new Date(createdAt!).toISOString(), createdAt!); // defaulted to now, as ISO
  }
});

test('decoded weights are fresh aligned copies, even from an unaligned buffer', (t) => {
  const weights = randomWeights(LAYERS, 1);
  const shifted = new Uint8Array(VALID.length + 3);
  shifted.set(VALID, 3);
  const view = shifted.subarray(3); // byteOffset 3: every tensor is misaligned for a Float32Array view
  const file = decodeModel(view);
  t.true(bitsEqual(file.weights, weights));
  for (const w of file.weights) {
    t.is(w.byteOffset, 0);
    t.not(w.buffer, shifted.buffer);
  }
  shifted.fill(0);
  t.true(bitsEqual(file.weights, weights));
});

test('saveModel/loadModel through the file system; fs errors name the file', async (t) => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'kana-model-'));
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
  const p = path.join(dir, 'model.safetensors');
  const weights = randomWeights([784, 32, 10], 5);
  await saveModel(p, { layers: [784, 32, 10], inputShape: [28, 28] }, weights);
  const file = await loadModel(p);
  t.true(bitsEqual(file.weights, weights));
  t.deepEqual(file.meta.inputShape, [28, 28]);
  t.deepEqual(fs.readdirSync(dir), ['model.safetensors']);

  const missing = path.join(dir, 'nope.safetensors');
  await t.throwsAsync(loadModel(missing), { instanceOf: ModelFileError, code: 'ENOENT', message: `${missing}: no such file` });
  await t.throwsAsync(loadModel(dir), { instanceOf: ModelFileError, code: 'EISDIR' });
  const noDir = path.join(dir, 'sub', 'm.safetensors');
  await t.throwsAsync(saveModel(noDir, { layers: [2, 1] }, randomWeights([2, 1], 1)), { message: `cannot write ${noDir}: directory ${path.dirname(noDir)} does not exist` });
  // Invalid input to save is a ModelFileError naming the target, and nothing is written.
  await t.throwsAsync(saveModel(p + '2', { layers: [2, 1] }, [new Float32Array([0, NaN]), new Float32Array(1)]), { instanceOf: ModelFileError, code: 'ENONFINITE', message: /^.*model\.safetensors2: tensor "layers\.0\.weight" has NaN at index 1 \(input 1, output 0\)/ });
  t.false(fs.existsSync(p + '2'));
});

test('the file parses with an independent reader; layout W[i*out + j] = input i → output j', (t) => {
  const layers = [3, 4, 2];
  const weights = randomWeights(layers, 9);
  for (let i = 0; i < 3; i++) for (let j = 0; j < 4; j++) weights[0][i * 4 + j] = 10 * i + j;
  const bytes = encodeModel({ layers, classNames: ['a', 'b'], createdAt: '2024-01-02T03:04:05.000Z' }, weights);
  const { n, headerText, header, tensors } = miniRead(bytes);

  // Length prefix, '{' first, header space-padded to a multiple of 8 → data 8-byte aligned.
  t.is(n % 8, 0);
  t.is(bytes[8], 0x7b);
  const trimmed = headerText.trimEnd();
  t.true(headerText.length - trimmed.length < 8);
  t.is(headerText.slice(trimmed.length), ' '.repeat(headerText.length - trimmed.length));
  t.is(Buffer.byteLength(trimmed) + (headerText.length - trimmed.length), n);

  // Header order = data order, contiguous from 0 to the end of the file.
  t.deepEqual(Object.keys(header), ['__metadata__', 'layers.0.weight', 'layers.0.bias', 'layers.1.weight', 'layers.1.bias']);
  let pos = 0;
  for (const [k, name] of Object.keys(tensors).entries()) {
    const info = tensors[name];
    t.is(info.dtype, 'F32');
    t.deepEqual(info.shape, k % 2 === 0 ? [layers[k / 2], layers[k / 2 + 1]] : [layers[(k + 1) / 2]]);
    t.deepEqual(info.offsets, [pos, pos + 4 * weights[k].length]);
    t.deepEqual(info.values, Array.from(weights[k]));
    t.true(info.values.every((v, i) => Object.is(v, weights[k][i]))); // -0 survives too
    pos = info.offsets[1];
  }
  t.is(8 + n + pos, bytes.length);
  // Row-major [in, out]: row i, column j.
  const w0 = tensors['layers.0.weight'];
  for (let i = 0; i < 3; i++) for (let j = 0; j < 4; j++) t.is(w0.values[i * w0.shape[1] + j], 10 * i + j);

  // Metadata: string → string only, our JSON under "kana-native".
  t.deepEqual(Object.keys(header.__metadata__), ['kana-native']);
  t.deepEqual(JSON.parse(header.__metadata__['kana-native']), {
    format: 'kana-native-model', version: 2, layers, activation: 'relu', batchNorm: false, output: 'softmax',
    normalization: { divideBy: 255 }, classNames: ['a', 'b'], createdAt: '2024-01-02T03:04:05.000Z',
  });
});

/**
 * What Python's `safetensors.numpy.save_file(tensors, path, metadata={"kana-native": ...})` writes
 * (the Rust core: serde_json, compact; "__metadata__" first; tensors sorted by dtype then name, so
 * layers.0.bias precedes layers.0.weight and layers.10 precedes layers.2; header padded with
 * spaces to a multiple of 8). Built by hand here.
 */
function le32(values: number[]): Uint8Array {
  const out = new Uint8Array(4 * values.length);
  values.forEach((v, i) => new DataView(out.buffer).setFloat32(4 * i, v, true));
  return out;
}

test('accepts the byte layout the reference (Python/Rust) writer produces', (t) => {
  const metaJson = '{"format": "kana-native-model", "version": 1, "layers": [3, 2, 2], "activation": "relu", "output": "softmax", "normalization": {"divideBy": 255}, "classNames": ["\u304a", "\u304d"]}';
  const headerText = `{"__metadata__":{"kana-native":${JSON.stringify(metaJson)}},`
    + '"layers.0.bias":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},'
    + '"layers.0.weight":{"dtype":"F32","shape":[3,2],"data_offsets":[8,32]},'
    + '"layers.1.bias":{"dtype":"F32","shape":[2],"data_offsets":[32,40]},'
    + '"layers.1.weight":{"dtype":"F32","shape":[2,2],"data_offsets":[40,56]}}';
  const padding = (8 - (Buffer.byteLength(headerText) % 8)) % 8;
  const data = [le32([0.5, -0.5]), le32([1, 2, 3, 4, 5, 6]), le32([-1, 1]), le32([0.25, 0.75, -0.25, -0.75])];
  const bytes = Buffer.concat([Buffer.alloc(8), Buffer.from(headerText + ' '.repeat(padding)), ...data]);
  bytes.writeBigUInt64LE(BigInt(Buffer.byteLength(headerText) + padding), 0);
  t.is((8 + Buffer.byteLength(headerText) + padding) % 8, 0);

  const file = decodeModel(bytes, 'from-python.safetensors');
  t.deepEqual(file.weights.map((w) => Array.from(w)), [[1, 2, 3, 4, 5, 6], [0.5, -0.5], [0.25, 0.75, -0.25, -0.75], [-1, 1]]);
  t.deepEqual(file.meta.classNames, ['お', 'き']);
  t.is(file.meta.createdAt, undefined);
});

test('accepts reference name-sorted order with ≥ 11 layers (layers.10 before layers.2)', (t) => {
  const layers = [3, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2];
  const weights = randomWeights(layers, 3);
  const names = weights.map((_, k) => `layers.${k >> 1}.${k % 2 ? 'bias' : 'weight'}`);
  const order = names.map((_, k) => k).sort((a, b) => (names[a] < names[b] ? -1 : 1));
  t.is(names[order[2]], 'layers.1.bias');
  t.is(names[order[4]], 'layers.10.bias');
  const header: Record<string, unknown> = { __metadata__: { 'kana-native': JSON.stringify({ format: 'kana-native-model', version: 1, layers, activation: 'relu', output: 'softmax', normalization: { divideBy: 255 } }) } };
  let pos = 0;
  for (const k of order) {
    header[names[k]] = { dtype: 'F32', shape: k % 2 ? [layers[(k >> 1) + 1]] : [layers[k >> 1], layers[(k >> 1) + 1]], data_offsets: [pos, pos + weights[k].byteLength] };
    pos += weights[k].byteLength;
  }
  const data = Buffer.concat(order.map((k) => Buffer.from(weights[k].buffer, weights[k].byteOffset, weights[k].byteLength)));
  t.true(bitsEqual(decodeModel(assemble(header, data)).weights, weights));
});

// ---------------------------------------------------------------------------------------------
// Every bad input gets its own error

test('structure: too short, header length, header text', (t) => {
  rejects(t, new Uint8Array(0), 'ETOOSHORT', /file is 0 bytes, too short/);
  rejects(t, VALID.subarray(0, 7), 'ETOOSHORT', /file is 7 bytes/);
  const huge = VALID.slice();
  new DataView(huge.buffer).setBigUint64(0, 2n ** 64n - 1n, true);
  rejects(t, huge, 'EHEADERLEN', /header length 18446744073709551615 is absurd/);
  new DataView(huge.buffer).setBigUint64(0, 100_000_001n, true);
  rejects(t, huge, 'EHEADERLEN', /is absurd \(over 100000000 bytes\)/);
  new DataView(huge.buffer).setBigUint64(0, BigInt(VALID.length), true);
  rejects(t, huge, 'EHEADERLEN', new RegExp(`header length ${VALID.length} runs past the end of the ${VALID.length}-byte file`));
  rejects(t, VALID.subarray(0, 100), 'EHEADERLEN', /runs past the end of the 100-byte file/);

  rejects(t, assemble('', new Uint8Array(0), false), 'EHEADER', /header is empty/);
  rejects(t, assemble('[1,2]', new Uint8Array(0)), 'EHEADER', /does not start with "\{"/);
  rejects(t, assemble(' {}', new Uint8Array(0)), 'EHEADER', /does not start with "\{"/);
  const badUtf8 = assemble('{"a":"xx"}', new Uint8Array(0));
  badUtf8.set([0xc3, 0x28], 8 + 6); // an invalid 2-byte sequence inside the string
  rejects(t, badUtf8, 'EHEADER', /header is not valid UTF-8/);
  rejects(t, assemble('{"a":', new Uint8Array(0)), 'EHEADER', /header is not valid JSON/);
  rejects(t, rewrite(VALID, (h) => { h['layers.0.bias'] = [1]; }), 'EHEADER', /tensor "layers\.0\.bias": header entry is not a JSON object/);
});

test('metadata: missing, non-string, invalid JSON, format, version, layers, class names', (t) => {
  rejects(t, rewrite(VALID, (h) => { delete h.__metadata__; }), 'ENOMETA', /no "__metadata__" in the header/);
  rejects(t, rewrite(VALID, (h) => { h.__metadata__ = { other: 'x' }; }), 'ENOMETA', /no "kana-native" entry in __metadata__/);
  rejects(t, rewrite(VALID, (h) => { h.__metadata__ = 'x'; }), 'EMETA', /"__metadata__" is not a JSON object/);
  rejects(t, rewrite(VALID, (h) => { h.__metadata__.version = 1; }), 'EMETA', /__metadata__\["version"\] is not a string/);
  rejects(t, rewrite(VALID, (h) => { h.__metadata__['kana-native'] = JSON.parse(h.__metadata__['kana-native']); }), 'EMETA', /__metadata__\["kana-native"\] is not a string/);
  rejects(t, rewrite(VALID, (h) => { h.__metadata__['kana-native'] = '{"format": '; }), 'EMETA', /__metadata__\["kana-native"\] is not valid JSON/);
  rejects(t, rewrite(VALID, (h) => { h.__metadata__['kana-native'] = '[1]'; }), 'EMETA', /is not a JSON object/);
  rejects(t, rewriteMeta(VALID, (m) => { m.format = 'keras'; }), 'EFORMAT', /unknown format "keras": expected "kana-native-model"/);
  rejects(t, rewriteMeta(VALID, (m) => { m.version = 3; }), 'EVERSION', /version 3 is not supported: this build of kana-native reads versions 1 and 2/);
  rejects(t, rewriteMeta(VALID, (m) => { m.version = '2'; }), 'EVERSION', /version "2" is not supported/);
  rejects(t, rewriteMeta(VALID, (m) => { delete m.version; }), 'EVERSION', /version undefined is not supported/);
  for (const layers of [[6], [], [6, 0, 3], [6, 4.5, 3], [6, -4, 3], '6-4-3', null, [6, '4', 3]]) {
    rejects(t, rewriteMeta(VALID, (m) => { m.layers = layers; }), 'ELAYERS', /layers must be at least 2 positive integers/);
  }
  // A hostile, deeply nested value must still give a ModelFileError, not a stack overflow.
  const deep = '['.repeat(200_000) + ']'.repeat(200_000);
  const nested = rewrite(VALID, (h) => { h.__metadata__['kana-native'] = h.__metadata__['kana-native'].replace('"layers":[6,4,3]', `"layers":${deep}`); });
  rejects(t, nested, 'ELAYERS', /layers must be at least 2 positive integers .*, got \(a deeply nested array\)/);
  rejects(t, rewriteMeta(VALID, (m) => { m.classNames = ['a', 'b']; }), 'ECLASSNAMES', /2 classNames for 3 output classes/);
  rejects(t, rewriteMeta(VALID, (m) => { m.classNames = ['a', 'b', 3]; }), 'EMETA', /classNames is not an array of strings/);
  rejects(t, rewriteMeta(VALID, (m) => { m.inputShape = [28, 28]; }), 'EMETA', /inputShape \[28,28\] is not \[height, width\] with height × width = 6 inputs/);
  rejects(t, rewriteMeta(VALID, (m) => { m.activation = 'tanh'; }), 'EUNSUPPORTED', /activation "tanh" is not supported/);
  rejects(t, rewriteMeta(VALID, (m) => { m.output = 'sigmoid'; }), 'EUNSUPPORTED', /output "sigmoid" is not supported/);
  rejects(t, rewriteMeta(VALID, (m) => { m.normalization = { divideBy: 1 }; }), 'EUNSUPPORTED', /normalization \{"divideBy":1\} is not supported/);
  rejects(t, rewriteMeta(VALID, (m) => { m.seed = -1; }), 'EMETA', /seed -1 is not a non-negative integer/);
  rejects(t, rewriteMeta(VALID, (m) => { m.createdAt = 'yesterday'; }), 'EMETA', /createdAt "yesterday" is not an ISO date/);
  rejects(t, rewriteMeta(VALID, (m) => { m.training = [1]; }), 'EMETA', /training is not a JSON object/);
});

test('tensors: missing, extra, dtype, shape', (t) => {
  rejects(t, rewrite(VALID, (h) => { delete h['layers.1.bias']; }), 'EMISSING', /tensor "layers\.1\.bias" is missing \(layers \[6,4,3\] need 4 tensors\)/);
  rejects(t, rewrite(VALID, (h) => { h['layers.2.weight'] = h['layers.1.bias']; }), 'EEXTRA', /unexpected tensor "layers\.2\.weight"/);
  rejects(t, rewrite(VALID, (h) => { h.optimizer_m = { dtype: 'F32', shape: [0], data_offsets: [0, 0] }; }), 'EEXTRA', /unexpected tensor "optimizer_m"/);
  rejects(t, rewrite(VALID, (h) => { h['layers.0.weight'].dtype = 'F16'; }), 'EDTYPE', /tensor "layers\.0\.weight" has dtype "F16": kana-native models are F32 only/);
  rejects(t, rewrite(VALID, (h) => { delete h['layers.0.bias'].dtype; }), 'EDTYPE', /has dtype undefined/);
  rejects(t, rewrite(VALID, (h) => { h['layers.0.weight'].shape = [4, 6]; }), 'ESHAPE', /tensor "layers\.0\.weight" has shape \[4,6\], the layers in the metadata need \[6,4\]/);
  rejects(t, rewrite(VALID, (h) => { h['layers.1.bias'].shape = [1, 3]; }), 'ESHAPE', /has shape \[1,3\], .* need \[3\]/);
  rejects(t, rewriteMeta(VALID, (m) => { m.layers = [6, 5, 3]; m.classNames = undefined; }), 'ESHAPE', /"layers\.0\.weight" has shape \[6,4\], the layers in the metadata need \[6,5\]/);
});

test('data_offsets: malformed, end < begin, size, out of range, overlap, gap, trailing bytes', (t) => {
  // VALID's data: W0 [0,96), b0 [96,112), W1 [112,160), b1 [160,172).
  const set = (name: string, off: unknown) => rewrite(VALID, (h) => { h[name].data_offsets = off; });
  rejects(t, set('layers.0.bias', [96]), 'EOFFSETS', /data_offsets \[96\] is not a pair of non-negative integers/);
  rejects(t, set('layers.0.bias', [-16, 0]), 'EOFFSETS', /not a pair of non-negative integers/);
  rejects(t, set('layers.0.bias', [96.5, 112.5]), 'EOFFSETS', /not a pair of non-negative integers/);
  rejects(t, set('layers.0.bias', [112, 96]), 'EOFFSETS', /"layers\.0\.bias": data_offsets end 96 is before begin 112/);
  rejects(t, set('layers.0.bias', [96, 116]), 'EOFFSETS', /data_offsets \[96, 116\] span 20 bytes, shape \[4\] of F32 needs 16/);
  rejects(t, set('layers.1.bias', [164, 176]), 'EOFFSETS', /"layers\.1\.bias": data_offsets \[164, 176\] run past the end of the 172-byte data section/);
  rejects(t, VALID.subarray(0, VALID.length - 4), 'EOFFSETS', /run past the end of the 168-byte data section: truncated file\?/);
  rejects(t, set('layers.1.bias', [96, 108]), 'EOFFSETS', /tensors "layers\.0\.bias" and "layers\.1\.bias" overlap|tensors "layers\.1\.bias" and "layers\.0\.bias" overlap/);
  rejects(t, set('layers.1.bias', [100, 112]), 'EOFFSETS', /overlap in the data section \(bytes 100–112\)/);
  rejects(t, rewrite(VALID, (h, d) => {
    h['layers.1.bias'].data_offsets = [168, 180];
    const more = new Uint8Array(d.length + 8);
    more.set(d.subarray(0, 160));
    more.set(d.subarray(160), 168);
    return more;
  }), 'EOFFSETS', /data is not contiguous: bytes 160–168 of the data section, before "layers\.1\.bias", belong to no tensor/);
  rejects(t, rewrite(VALID, (h, d) => {
    for (const k of Object.keys(h)) if (k !== '__metadata__') h[k].data_offsets = h[k].data_offsets.map((x: number) => x + 4);
    return new Uint8Array([0, 0, 0, 0, ...d]);
  }), 'EOFFSETS', /bytes 0–4 of the data section, before "layers\.0\.weight", belong to no tensor/);
  rejects(t, new Uint8Array([...VALID, 1, 2, 3]), 'ETRAILING', /3 trailing bytes after the last tensor/);
});

test('NaN or Inf anywhere is refused, naming the tensor and index', (t) => {
  const { header } = split(VALID);
  const start = VALID.length - 172;
  const poke = (name: string, index: number, v: number) => {
    const b = VALID.slice();
    new DataView(b.buffer).setFloat32(start + header[name].data_offsets[0] + 4 * index, v, true);
    return b;
  };
  rejects(t, poke('layers.0.weight', 9, NaN), 'ENONFINITE', /tensor "layers\.0\.weight" has NaN at index 9 \(input 2, output 1\): weights must be finite/);
  rejects(t, poke('layers.1.bias', 2, -Infinity), 'ENONFINITE', /tensor "layers\.1\.bias" has -Infinity at index 2: weights must be finite/);
  rejects(t, poke('layers.0.bias', 0, Infinity), 'ENONFINITE', /"layers\.0\.bias" has Infinity at index 0/);
});

test('encodeModel refuses what it could not read back', (t) => {
  const w = randomWeights([2, 3], 1);
  t.throws(() => encodeModel({ layers: [2, 3] }, [w[0]]), { instanceOf: ModelFileError, code: 'EWEIGHTS', message: /layers \[2,3\] need 2 weight arrays \[W0, b0, …\], got 1/ });
  t.throws(() => encodeModel({ layers: [2, 3] }, [w[0], [0, 0, 0] as any]), { code: 'EWEIGHTS', message: /weights\[1\] \(layers\.0\.bias\) is not a Float32Array/ });
  t.throws(() => encodeModel({ layers: [2, 3] }, [w[0], new Float32Array(2)]), { code: 'ESHAPE', message: /weights\[1\] \(layers\.0\.bias\) has 2 values, shape \[3\] needs 3/ });
  t.throws(() => encodeModel({ layers: [2, 3] }, [w[0], new Float32Array([0, Infinity, 0])]), { code: 'ENONFINITE' });
  t.throws(() => encodeModel({ layers: [2] }, []), { code: 'ELAYERS' });
  t.throws(() => encodeModel({ layers: [2, 3], classNames: ['a'] }, w), { code: 'ECLASSNAMES' });
  t.throws(() => encodeModel({ layers: [2, 3], training: { n: 1n } as any }, w), { code: 'EMETA', message: /not JSON-serialisable/ });
});

// ---------------------------------------------------------------------------------------------
// Version 2: activations, batch norm, dropout

const BN_LAYERS = [6, 4, 5, 3];
const BN_META: ModelMeta = { layers: BN_LAYERS, activation: 'gelu', batchNorm: true, bnEps: 1e-3, dropout: [0.5, 0.25], seed: 9, createdAt: '2025-01-01T00:00:00.000Z' };
const BN_VALID = encodeModel(BN_META, randomWeights(BN_LAYERS, 11), randomNorm(BN_LAYERS, 12));

test('version 2: every activation, batch norm and dropout round-trip bit-exact', (t) => {
  for (const activation of ['relu', 'leaky-relu', 'silu', 'gelu'] as const) {
    for (const batchNorm of [false, true]) {
      const weights = randomWeights(BN_LAYERS, 20);
      const norm = batchNorm ? randomNorm(BN_LAYERS, 21) : [];
      const meta: ModelMeta = { layers: BN_LAYERS, activation, batchNorm, dropout: 0.1, createdAt: '2025-01-01T00:00:00.000Z' };
      const file = decodeModel(encodeModel(meta, weights, norm));
      t.true(bitsEqual(file.weights, weights) && bitsEqual(file.norm, norm), `${activation} ${batchNorm}`);
      t.like(file.meta, { version: 2, activation, batchNorm, dropout: [0.1, 0.1] });
      // What only matters for some settings is written only with them, with its default.
      t.is(file.meta.leakySlope, activation === 'leaky-relu' ? 0.01 : undefined);
      t.is(file.meta.bnEps, batchNorm ? 1e-5 : undefined);
    }
  }
  const custom = decodeModel(encodeModel({ layers: [4, 3, 2], activation: 'leaky-relu', leakySlope: 0.2, batchNorm: false, leakySlope2: 1 } as ModelMeta, randomWeights([4, 3, 2], 1)));
  t.is(custom.meta.leakySlope, 0.2);
  t.false('leakySlope2' in custom.meta);
  // No hidden layer: batch norm has nothing to normalise, so no norm tensors.
  const linear = decodeModel(encodeModel({ layers: [4, 2], batchNorm: true }, randomWeights([4, 2], 1)));
  t.deepEqual(linear.norm, []);
  t.true(linear.meta.batchNorm);
});

test('version 2: batch-norm tensors have PyTorch BatchNorm1d names, shape [out], and follow their layer', (t) => {
  const norm = randomNorm(BN_LAYERS, 12);
  const { header, tensors } = miniRead(BN_VALID);
  t.deepEqual(Object.keys(header), [
    '__metadata__',
    'layers.0.weight', 'layers.0.bias', 'layers.0.bn.weight', 'layers.0.bn.bias', 'layers.0.bn.running_mean', 'layers.0.bn.running_var',
    'layers.1.weight', 'layers.1.bias', 'layers.1.bn.weight', 'layers.1.bn.bias', 'layers.1.bn.running_mean', 'layers.1.bn.running_var',
    'layers.2.weight', 'layers.2.bias',
  ]);
  ['weight', 'bias', 'running_mean', 'running_var'].forEach((name, k) => {
    t.deepEqual(tensors[`layers.0.bn.${name}`].shape, [4]);
    t.deepEqual(tensors[`layers.1.bn.${name}`].shape, [5]);
    t.deepEqual(tensors[`layers.0.bn.${name}`].values, Array.from(norm[k]));
    t.deepEqual(tensors[`layers.1.bn.${name}`].values, Array.from(norm[4 + k]));
  });
  t.deepEqual(JSON.parse(header.__metadata__['kana-native']), {
    format: 'kana-native-model', version: 2, layers: BN_LAYERS, activation: 'gelu', batchNorm: true, bnEps: 1e-3, dropout: [0.5, 0.25],
    output: 'softmax', normalization: { divideBy: 255 }, seed: 9, createdAt: '2025-01-01T00:00:00.000Z',
  });
  // The reference (Python) writer's name-sorted order reads the same.
  const { data } = split(BN_VALID);
  const names = Object.keys(header).filter((k) => k !== '__metadata__').sort();
  const sorted: Record<string, unknown> = { __metadata__: header.__metadata__ };
  const chunks: Uint8Array[] = [];
  let pos = 0;
  for (const name of names) {
    const [b, e] = header[name].data_offsets;
    sorted[name] = { ...header[name], data_offsets: [pos, pos + e - b] };
    chunks.push(data.subarray(b, e));
    pos += e - b;
  }
  const file = decodeModel(assemble(sorted, Buffer.concat(chunks)));
  t.true(bitsEqual(file.norm, norm));
  t.true(bitsEqual(file.weights, randomWeights(BN_LAYERS, 11)));
});

test('version 2 metadata: activation, leakySlope, batchNorm, bnEps, dropout are checked', (t) => {
  rejects(t, rewriteMeta(VALID, (m) => { m.activation = 'tanh'; }), 'EUNSUPPORTED', /activation "tanh" is not supported \(one of "relu", "leaky-relu", "silu", "gelu"\)/);
  rejects(t, rewriteMeta(VALID, (m) => { delete m.activation; }), 'EUNSUPPORTED', /activation undefined is not supported/);
  rejects(t, rewriteMeta(VALID, (m) => { m.activation = 'leaky-relu'; }), 'EMETA', /leakySlope undefined is not a finite number >= 0 \(activation "leaky-relu" needs it\)/);
  rejects(t, rewriteMeta(VALID, (m) => { m.activation = 'leaky-relu'; m.leakySlope = '0.1'; }), 'EMETA', /leakySlope "0.1" is not a finite number/);
  rejects(t, rewriteMeta(VALID, (m) => { m.activation = 'leaky-relu'; m.leakySlope = -0.1; }), 'EMETA', /leakySlope -0\.1 is not a finite number >= 0/);
  rejects(t, rewriteMeta(VALID, (m) => { m.leakySlope = 0.1; }), 'EMETA', /leakySlope is given but the activation is "relu", not "leaky-relu"/);
  rejects(t, rewriteMeta(VALID, (m) => { delete m.batchNorm; }), 'EMETA', /batchNorm undefined is not true or false/);
  rejects(t, rewriteMeta(VALID, (m) => { m.batchNorm = 1; }), 'EMETA', /batchNorm 1 is not true or false/);
  rejects(t, rewriteMeta(VALID, (m) => { m.bnEps = 1e-5; }), 'EMETA', /bnEps is given but batchNorm is false/);
  rejects(t, rewriteMeta(BN_VALID, (m) => { delete m.bnEps; }), 'EMETA', /bnEps undefined is not a finite number > 0 \(batch norm needs it\)/);
  rejects(t, rewriteMeta(BN_VALID, (m) => { m.bnEps = 0; }), 'EMETA', /bnEps 0 is not a finite number > 0/);
  rejects(t, rewriteMeta(BN_VALID, (m) => { m.dropout = [0.5]; }), 'EMETA', /dropout \[0\.5\] is not 2 rates in \[0, 1\), one per hidden layer/);
  rejects(t, rewriteMeta(BN_VALID, (m) => { m.dropout = [0.5, 1]; }), 'EMETA', /dropout \[0\.5,1\] is not 2 rates/);
  rejects(t, rewriteMeta(BN_VALID, (m) => { m.dropout = 0.5; }), 'EMETA', /dropout 0\.5 is not 2 rates/);
  // Turning batch norm off in the metadata leaves its tensors unexplained; on, they are missing.
  rejects(t, rewriteMeta(BN_VALID, (m) => { m.batchNorm = false; delete m.bnEps; }), 'EEXTRA', /unexpected tensor "layers\.0\.bn\.weight" \(batchNorm is off in the metadata\)/);
  rejects(t, rewriteMeta(VALID, (m) => { m.batchNorm = true; m.bnEps = 1e-5; }), 'EMISSING', /tensor "layers\.0\.bn\.weight" is missing \(layers \[6,4,3\] with batch norm need 8 tensors\)/);
});

test('batch-norm tensors: missing, extra, shape, dtype, non-finite, running variance <= 0', (t) => {
  rejects(t, rewrite(BN_VALID, (h) => { delete h['layers.1.bn.running_mean']; }), 'EMISSING', /tensor "layers\.1\.bn\.running_mean" is missing \(layers \[6,4,5,3\] with batch norm need 14 tensors\)/);
  // The output layer has no batch norm.
  rejects(t, rewrite(BN_VALID, (h) => { h['layers.2.bn.weight'] = h['layers.1.bn.weight']; }), 'EEXTRA', /unexpected tensor "layers\.2\.bn\.weight" \(layers \[6,4,5,3\] with batch norm have no such parameter\)/);
  rejects(t, rewrite(BN_VALID, (h) => { h['layers.0.bn.bias'].shape = [5]; }), 'ESHAPE', /tensor "layers\.0\.bn\.bias" has shape \[5\], the layers in the metadata need \[4\]/);
  rejects(t, rewrite(BN_VALID, (h) => { h['layers.0.bn.running_var'].dtype = 'F64'; }), 'EDTYPE', /"layers\.0\.bn\.running_var" has dtype "F64"/);
  const { header } = split(BN_VALID);
  const dataLen = Object.values(header).reduce((m: number, v: any) => (v.data_offsets ? Math.max(m, v.data_offsets[1]) : m), 0);
  const start = BN_VALID.length - dataLen;
  const poke = (name: string, index: number, v: number) => {
    const b = BN_VALID.slice();
    new DataView(b.buffer).setFloat32(start + header[name].data_offsets[0] + 4 * index, v, true);
    return b;
  };
  rejects(t, poke('layers.1.bn.weight', 3, NaN), 'ENONFINITE', /tensor "layers\.1\.bn\.weight" has NaN at index 3: batch-norm parameters and statistics must be finite/);
  rejects(t, poke('layers.0.bn.running_mean', 0, Infinity), 'ENONFINITE', /"layers\.0\.bn\.running_mean" has Infinity at index 0/);
  rejects(t, poke('layers.0.bn.running_var', 2, 0), 'EVARIANCE', /tensor "layers\.0\.bn\.running_var" has 0 at index 2: a running variance must be > 0/);
  rejects(t, poke('layers.1.bn.running_var', 4, -0.5), 'EVARIANCE', /"layers\.1\.bn\.running_var" has -0\.5 at index 4/);
  rejects(t, poke('layers.1.bn.running_var', 1, -0), 'EVARIANCE', /has 0 at index 1/);
  t.notThrows(() => decodeModel(poke('layers.0.bn.bias', 0, -3)));
});

test('encodeModel refuses norm state that does not fit the metadata', (t) => {
  const w = randomWeights(BN_LAYERS, 1);
  const norm = randomNorm(BN_LAYERS, 2);
  t.throws(() => encodeModel({ layers: BN_LAYERS, batchNorm: true }, w), { instanceOf: ModelFileError, code: 'EWEIGHTS', message: /batch norm on layers \[6,4,5,3\] needs 8 norm arrays \[γ, β, running mean, running variance\] per hidden layer, got 0/ });
  t.throws(() => encodeModel({ layers: BN_LAYERS }, w, norm), { code: 'EWEIGHTS', message: /8 norm arrays given, but batchNorm is off/ });
  const short = norm.slice();
  short[5] = new Float32Array(4);
  t.throws(() => encodeModel({ layers: BN_LAYERS, batchNorm: true }, w, short), { code: 'ESHAPE', message: /norm\[5\] \(layers\.1\.bn\.bias\) has 4 values, shape \[5\] needs 5/ });
  const zeroVar = norm.map((a) => a.slice());
  zeroVar[3][1] = 0;
  t.throws(() => encodeModel({ layers: BN_LAYERS, batchNorm: true }, w, zeroVar), { code: 'EVARIANCE', message: /layers\.0\.bn\.running_var/ });
  t.throws(() => encodeModel({ layers: BN_LAYERS, activation: 'swish' as never }, w), { code: 'EUNSUPPORTED', message: /activation "swish"/ });
  t.throws(() => encodeModel({ layers: BN_LAYERS, dropout: 1 }, w), { code: 'EMETA', message: /dropout \[1,1\] is not 2 rates/ });
  t.throws(() => encodeModel({ layers: BN_LAYERS, batchNorm: true, bnEps: -1 }, w, norm), { code: 'EMETA', message: /bnEps -1/ });
});

test('version-1 files (written by the pre-version-2 writer, reproduced in the test) still load: ReLU, no batch norm', (t) => {
  const layers = [6, 4, 3];
  const weights = randomWeights(layers, 31);
  const meta = { layers, classNames: ['お', 'き', 'す'], inputShape: [2, 3] as [number, number], seed: 7, training: { lr: 0.1 }, metrics: { accuracy: 0.5 }, createdAt: '2024-06-01T12:00:00.000Z' };
  const v1 = encodeModelV1(meta, weights);
  t.is(JSON.parse(split(v1).header.__metadata__['kana-native']).version, 1);
  const file = decodeModel(v1, 'old.safetensors');
  t.true(bitsEqual(file.weights, weights));
  t.deepEqual(file.norm, []);
  t.deepEqual(file.meta, { format: 'kana-native-model', version: 1, activation: 'relu', batchNorm: false, output: 'softmax', normalization: { divideBy: 255 }, ...meta });
  // Re-saving writes version 2 with the same tensors.
  const again = decodeModel(encodeModel(file.meta, file.weights, file.norm));
  t.is(again.meta.version, 2);
  t.true(bitsEqual(again.weights, weights));
  // A version-1 file cannot carry version-2 settings.
  rejects(t, rewriteMeta(v1, (m) => { m.activation = 'gelu'; }), 'EUNSUPPORTED', /activation "gelu" is not supported in a version-1 file \(only "relu"\)/);
  for (const key of ['batchNorm', 'leakySlope', 'bnEps', 'dropout']) {
    rejects(t, rewriteMeta(v1, (m) => { m[key] = key === 'batchNorm' ? false : 0.1; }), 'EMETA', new RegExp(`${key} is a version-2 field, but the file says version 1`));
  }
});

// ---------------------------------------------------------------------------------------------
// Robustness property: arbitrary damage gives a valid model or a ModelFileError, nothing else

const BASES = [
  VALID, encodeModel({ layers: [3, 2] }, randomWeights([3, 2], 4)),
  encodeModel({ layers: LAYERS, activation: 'leaky-relu', leakySlope: 0.2, batchNorm: true, dropout: 0.25 }, randomWeights(LAYERS, 5), randomNorm(LAYERS, 6)),
  encodeModelV1({ layers: LAYERS, seed: 3 }, randomWeights(LAYERS, 7)),
];
const TENSOR_KEYS = [
  'layers.0.weight', 'layers.0.bias', 'layers.1.weight', 'layers.1.bias', 'layers.2.bias', '__metadata__', '__proto__', 'x',
  'layers.0.bn.weight', 'layers.0.bn.bias', 'layers.0.bn.running_mean', 'layers.0.bn.running_var', 'layers.1.bn.weight',
];
const META_FIELDS = [
  'format', 'version', 'layers', 'activation', 'output', 'normalization', 'inputShape', 'classNames', 'training', 'metrics', 'seed', 'createdAt',
  'leakySlope', 'batchNorm', 'bnEps', 'dropout',
];
const small = fc.integer({ min: -2, max: 200 });
const plausible = fc.oneof(
  fc.jsonValue({ maxDepth: 3 }),
  fc.constantFrom('F32', 'F16', 'F64', 'I32', 'kana-native-model', 1, 2, 255, NaN, 1e308, -0, true, false, 'relu', 'gelu', 'leaky-relu', 0.01, [0.5]),
  fc.array(small, { maxLength: 4 }),
  fc.array(fc.string({ maxLength: 3 }), { maxLength: 4 }),
  fc.constant(undefined), // delete
);

type Op =
  | { kind: 'byte'; at: number; value: number; inHeader: boolean }
  | { kind: 'truncate'; at: number }
  | { kind: 'append'; bytes: Uint8Array }
  | { kind: 'prefix'; value: bigint }
  | { kind: 'resize'; delta: number }
  | { kind: 'float'; at: number; value: number }
  | { kind: 'tensor'; key: string; field: string | null; value: unknown }
  | { kind: 'meta'; field: string; value: unknown }
  | { kind: 'text'; at: number; char: string };

// Weighted towards header rewrites: most random byte damage is caught by the length prefix alone.
const op: fc.Arbitrary<Op> = fc.oneof(
  { weight: 2, arbitrary: fc.record({ kind: fc.constant('byte' as const), at: fc.nat(), value: fc.integer({ min: 0, max: 255 }), inHeader: fc.boolean() }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('truncate' as const), at: fc.nat() }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('append' as const), bytes: fc.uint8Array({ maxLength: 12 }) }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('prefix' as const), value: fc.bigInt({ min: 0n, max: 2n ** 64n - 1n }) }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('resize' as const), delta: fc.integer({ min: -12, max: 12 }) }) },
  { weight: 2, arbitrary: fc.record({ kind: fc.constant('float' as const), at: fc.nat(), value: fc.constantFrom(NaN, Infinity, -Infinity, -0, 1e-45, 3e38) }) },
  { weight: 4, arbitrary: fc.record({ kind: fc.constant('tensor' as const), key: fc.constantFrom(...TENSOR_KEYS), field: fc.constantFrom(null, 'dtype', 'shape', 'data_offsets'), value: plausible }) },
  { weight: 4, arbitrary: fc.record({ kind: fc.constant('meta' as const), field: fc.constantFrom(...META_FIELDS), value: plausible }) },
  { weight: 3, arbitrary: fc.record({ kind: fc.constant('text' as const), at: fc.nat(), char: fc.constantFrom('{', '}', '"', ',', ':', '[', ']', '0', '9', ' ', '\\', 'é') }) },
);

function headerOf(bytes: Uint8Array): { header: Record<string, any>; text: string; data: Uint8Array } | undefined {
  try {
    const n = Number(new DataView(bytes.buffer, bytes.byteOffset, 8).getBigUint64(0, true));
    if (8 + n > bytes.length) return undefined;
    const text = Buffer.from(bytes.subarray(8, 8 + n)).toString('utf8');
    const header = JSON.parse(text);
    return header && typeof header === 'object' && !Array.isArray(header) ? { header, text, data: bytes.slice(8 + n) } : undefined;
  } catch {
    return undefined;
  }
}

function apply(bytes: Uint8Array, o: Op): Uint8Array {
  switch (o.kind) {
    case 'byte': {
      const b = bytes.slice();
      if (b.length === 0) return b;
      const n = headerOf(b) ? Number(new DataView(b.buffer).getBigUint64(0, true)) + 8 : b.length;
      b[o.inHeader ? o.at % Math.min(n, b.length) : o.at % b.length] = o.value;
      return b;
    }
    case 'truncate': return bytes.slice(0, o.at % (bytes.length + 1));
    case 'append': return new Uint8Array([...bytes, ...o.bytes]);
    case 'prefix': {
      const b = bytes.length >= 8 ? bytes.slice() : new Uint8Array(8);
      new DataView(b.buffer).setBigUint64(0, o.value, true);
      return b;
    }
    case 'resize': { // the length prefix moved by a few bytes, the rest untouched
      if (bytes.length < 8) return bytes;
      const b = bytes.slice();
      const dv = new DataView(b.buffer);
      const n = dv.getBigUint64(0, true) + BigInt(o.delta);
      dv.setBigUint64(0, n < 0n ? 0n : n, true);
      return b;
    }
    case 'float': { // a weight replaced (data section, 4-aligned from its start)
      const p = headerOf(bytes);
      if (!p || p.data.length < 4) return bytes;
      const b = bytes.slice();
      new DataView(b.buffer).setFloat32(b.length - p.data.length + 4 * (o.at % Math.floor(p.data.length / 4)), o.value, true);
      return b;
    }
    case 'tensor': case 'meta': {
      const p = headerOf(bytes);
      if (!p) return bytes;
      const h = p.header;
      if (o.kind === 'tensor') {
        if (o.field === null) h[o.key] = o.value;
        else if (h[o.key] && typeof h[o.key] === 'object') h[o.key][o.field] = o.value;
      } else {
        let m: any;
        try { m = JSON.parse(h.__metadata__['kana-native']); } catch { return bytes; }
        if (!m || typeof m !== 'object') return bytes;
        m[o.field] = o.value;
        h.__metadata__['kana-native'] = JSON.stringify(m);
      }
      return assemble(h, p.data);
    }
    case 'text': {
      const p = headerOf(bytes);
      if (!p) return bytes;
      const at = o.at % (p.text.length + 1);
      return assemble(p.text.slice(0, at) + o.char + p.text.slice(at + 1), p.data, false);
    }
  }
}

test('property: damaged files give a consistent model or a ModelFileError, never anything else', (t) => {
  const codes = new Map<string, number>();
  let accepted = 0;
  const started = Date.now();
  fc.assert(
    fc.property(fc.nat({ max: BASES.length - 1 }), fc.array(op, { minLength: 1, maxLength: 4 }), (base, ops) => {
      const bytes = ops.reduce(apply, BASES[base]);
      let file: ModelFile;
      try {
        file = decodeModel(bytes, 'fuzz.safetensors');
      } catch (e) {
        if (!(e instanceof ModelFileError)) throw e;
        if (!e.message.startsWith('fuzz.safetensors: ') || !/^E[A-Z]+$/.test(e.code)) return false;
        codes.set(e.code, (codes.get(e.code) ?? 0) + 1);
        return true;
      }
      accepted++;
      const { layers, classNames, inputShape } = file.meta;
      if (!(layers.length >= 2 && layers.every((n) => Number.isSafeInteger(n) && n > 0))) return false;
      if (file.weights.length !== 2 * (layers.length - 1)) return false;
      if (file.norm.length !== (file.meta.batchNorm ? 4 * (layers.length - 2) : 0)) return false;
      for (let h = 0; h < file.norm.length / 4; h++) {
        if (!file.norm.slice(4 * h, 4 * h + 4).every((a) => a.length === layers[h + 1])) return false;
        if (!file.norm[4 * h + 3].every((v) => v > 0)) return false;
      }
      if (!file.norm.every((w) => w.every(Number.isFinite))) return false;
      for (let l = 0; l + 1 < layers.length; l++) {
        if (file.weights[2 * l].length !== layers[l] * layers[l + 1] || file.weights[2 * l + 1].length !== layers[l + 1]) return false;
      }
      if (!file.weights.every((w) => w.every(Number.isFinite))) return false;
      if (classNames && classNames.length !== layers[layers.length - 1]) return false;
      if (inputShape && inputShape[0] * inputShape[1] !== layers[0]) return false;
      // Whatever was accepted can be written and read back identically.
      const again = decodeModel(encodeModel(file.meta, file.weights, file.norm));
      return bitsEqual(again.weights, file.weights) && bitsEqual(again.norm, file.norm);
    }),
    { seed: 0x6b616e61, numRuns: 2000, interruptAfterTimeLimit: 60_000, markInterruptAsFailure: true },
  );
  t.log(`${accepted} accepted; rejections by code: ${[...codes].sort().map(([c, n]) => `${c} ${n}`).join(', ')}; ${Date.now() - started} ms`);
  t.true(accepted > 0);
  t.true(codes.size >= 10, 'the mutations reach most of the checks');
});
