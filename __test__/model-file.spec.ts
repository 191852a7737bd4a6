import test from 'ava';
import fc from 'fast-check';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';

import { decodeModel, encodeModel, loadModel, ModelFileError, saveModel } from '../src/output/model-file';
import type { ModelFile, ModelMeta } from '../src/output/model-file';
import { mulberry32 } from '../src/data/split';

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
    t.deepEqual(rest, { format: 'kana-native-model', version: 1, activation: 'relu', output: 'softmax', normalization: { divideBy: 255 }, ...meta });
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
    format: 'kana-native-model', version: 1, layers, activation: 'relu', output: 'softmax',
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
  rejects(t, rewriteMeta(VALID, (m) => { m.version = 2; }), 'EVERSION', /version 2 is not supported: this build of kana-native reads version 1/);
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
// Robustness property: arbitrary damage gives a valid model or a ModelFileError, nothing else

const BASES = [VALID, encodeModel({ layers: [3, 2] }, randomWeights([3, 2], 4))];
const TENSOR_KEYS = ['layers.0.weight', 'layers.0.bias', 'layers.1.weight', 'layers.1.bias', 'layers.2.bias', '__metadata__', '__proto__', 'x'];
const META_FIELDS = ['format', 'version', 'layers', 'activation', 'output', 'normalization', 'inputShape', 'classNames', 'training', 'metrics', 'seed', 'createdAt'];
const small = fc.integer({ min: -2, max: 200 });
const plausible = fc.oneof(
  fc.jsonValue({ maxDepth: 3 }),
  fc.constantFrom('F32', 'F16', 'F64', 'I32', 'kana-native-model', 1, 2, 255, NaN, 1e308, -0),
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
      for (let l = 0; l + 1 < layers.length; l++) {
        if (file.weights[2 * l].length !== layers[l] * layers[l + 1] || file.weights[2 * l + 1].length !== layers[l + 1]) return false;
      }
      if (!file.weights.every((w) => w.every(Number.isFinite))) return false;
      if (classNames && classNames.length !== layers[layers.length - 1]) return false;
      if (inputShape && inputShape[0] * inputShape[1] !== layers[0]) return false;
      // Whatever was accepted can be written and read back identically.
      return bitsEqual(decodeModel(encodeModel(file.meta, file.weights)).weights, file.weights);
    }),
    { seed: 0x6b616e61, numRuns: 2000, interruptAfterTimeLimit: 60_000, markInterruptAsFailure: true },
  );
  t.log(`${accepted} accepted; rejections by code: ${[...codes].sort().map(([c, n]) => `${c} ${n}`).join(', ')}; ${Date.now() - started} ms`);
  t.true(accepted > 0);
  t.true(codes.size >= 10, 'the mutations reach most of the checks');
});
