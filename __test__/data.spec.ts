import test from 'ava';
import type { ExecutionContext } from 'ava';
import fc from 'fast-check';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { gzipSync } from 'node:zlib';
import { zipSync } from 'fflate';

import { DataError, loadImages, loadLabels, parseArray, readArray, toImages, toLabels, validateLabels } from '../src/data/readers';
import { loadClassmap, parseClassmap } from '../src/data/classmap';

const SHARED = path.resolve(__dirname, '..', '..', 'shared', 'data');
const haveShared = fs.existsSync(SHARED);
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'kana-data-'));
test.after.always(() => fs.rmSync(tmp, { recursive: true, force: true }));

let fileNo = 0;
function tmpFile(bytes: Uint8Array, name = 'a.bin'): string {
  const p = path.join(tmp, `${fileNo++}-${name}`);
  fs.writeFileSync(p, bytes);
  return p;
}

// ---------------------------------------------------------------------------------------------
// A hand-written .npy writer, independent of the reader under test.

type Code = 'b1' | 'u1' | 'i1' | 'u2' | 'i2' | 'u4' | 'i4' | 'u8' | 'i8' | 'f4' | 'f8';
const SIZE: Record<string, number> = { b1: 1, u1: 1, i1: 1, u2: 2, i2: 2, u4: 4, i4: 4, u8: 8, i8: 8, f2: 2, f4: 4, f8: 8 };

function encodeValues(code: Code, values: (number | bigint)[], bigEndian: boolean): Uint8Array {
  const size = SIZE[code];
  const out = new Uint8Array(values.length * size);
  const dv = new DataView(out.buffer);
  const le = !bigEndian;
  values.forEach((v, i) => {
    const o = i * size;
    switch (code) {
      case 'b1': case 'u1': dv.setUint8(o, Number(v)); break;
      case 'i1': dv.setInt8(o, Number(v)); break;
      case 'u2': dv.setUint16(o, Number(v), le); break;
      case 'i2': dv.setInt16(o, Number(v), le); break;
      case 'u4': dv.setUint32(o, Number(v), le); break;
      case 'i4': dv.setInt32(o, Number(v), le); break;
      case 'u8': dv.setBigUint64(o, BigInt(v), le); break;
      case 'i8': dv.setBigInt64(o, BigInt(v), le); break;
      case 'f4': dv.setFloat32(o, Number(v), le); break;
      case 'f8': dv.setFloat64(o, Number(v), le); break;
    }
  });
  return out;
}

function pyShape(shape: number[]): string {
  return shape.length === 1 ? `(${shape[0]},)` : `(${shape.join(', ')})`;
}

/** Header as NumPy writes it: dict text padded with spaces and a newline to a 64-byte boundary. */
function npy(descr: string, shape: number[], body: Uint8Array, opt: { fortran?: boolean; version?: 1 | 2 | 3; headerText?: string } = {}): Uint8Array {
  const version = opt.version ?? 1;
  const dict = opt.headerText ?? `{'descr': '${descr}', 'fortran_order': ${opt.fortran ? 'True' : 'False'}, 'shape': ${pyShape(shape)}, }`;
  const prefix = version === 1 ? 10 : 12;
  const pad = (64 - ((prefix + dict.length + 1) % 64)) % 64;
  const header = Buffer.from(dict + ' '.repeat(pad) + '\n', version === 3 ? 'utf8' : 'latin1');
  const pre = Buffer.alloc(prefix);
  Buffer.from([0x93, 0x4e, 0x55, 0x4d, 0x50, 0x59, version, 0]).copy(pre);
  if (version === 1) pre.writeUInt16LE(header.length, 8);
  else pre.writeUInt32LE(header.length, 8);
  return Buffer.concat([pre, header, body]);
}

function npyOf(code: Code, shape: number[], cValues: (number | bigint)[], opt: { bigEndian?: boolean; fortran?: boolean; version?: 1 | 2 | 3 } = {}): Uint8Array {
  const values = opt.fortran ? toFortranOrder(cValues, shape) : cValues;
  const order = SIZE[code] === 1 ? '|' : opt.bigEndian ? '>' : '<';
  return npy(order + code, shape, encodeValues(code, values, !!opt.bigEndian), opt);
}

/** Reorder C-order values into Fortran order (first index fastest). */
function toFortranOrder<T>(c: T[], shape: number[]): T[] {
  const out = new Array<T>(c.length);
  const cStride = shape.map((_, d) => shape.slice(d + 1).reduce((a, b) => a * b, 1));
  for (let f = 0; f < c.length; f++) {
    let rem = f;
    let ci = 0;
    for (let d = 0; d < shape.length; d++) {
      ci += (rem % shape[d]) * cStride[d];
      rem = Math.floor(rem / shape[d]);
    }
    out[f] = c[ci];
  }
  return out;
}

function idx(typeByte: number, shape: number[], body: Uint8Array): Uint8Array {
  const head = Buffer.alloc(4 + 4 * shape.length);
  head[2] = typeByte;
  head[3] = shape.length;
  shape.forEach((d, i) => head.writeUInt32BE(d, 4 + 4 * i));
  return Buffer.concat([head, body]);
}

async function rejects(t: ExecutionContext, p: Promise<unknown> | (() => unknown), code: string, ...patterns: RegExp[]): Promise<DataError> {
  let err: unknown;
  try {
    await (typeof p === 'function' ? p() : p);
  } catch (e) {
    err = e;
  }
  t.true(err instanceof DataError, `expected DataError ${code}, got ${String(err)}`);
  const e = err as DataError;
  t.is(e.code, code, e.message);
  for (const re of patterns) t.regex(e.message, re);
  return e;
}

// ---------------------------------------------------------------------------------------------
// Real files

test('real KMNIST: .npy and .npz give identical pixels and labels', async (t) => {
  if (!haveShared) { t.log(`SKIPPED: ${SHARED} is absent, real-data checks not run`); t.pass(); return; }
  const dir = path.join(SHARED, 'kmnist');
  const a = await loadImages(path.join(dir, 'X_images.npy'));
  const b = await loadImages(path.join(dir, 'kmnist-8k-imgs.npz'));
  t.deepEqual([a.n, a.rows, a.cols], [8000, 28, 28]);
  t.deepEqual([b.n, b.rows, b.cols], [8000, 28, 28]);
  t.is(a.images.length, 8000 * 784);
  t.true(Buffer.from(a.images).equals(Buffer.from(b.images)));
  // uint8 data is a view on the file buffer, not a copy.
  t.is(a.images.buffer.byteLength, fs.statSync(path.join(dir, 'X_images.npy')).size);
  t.true(a.images.some((v) => v === 255) && a.images.some((v) => v === 0));

  const ya = await loadLabels(path.join(dir, 'y_images.npy'));
  const yb = await loadLabels(path.join(dir, 'kmnist-8k-labels.npz'));
  t.is(ya.n, 8000);
  t.deepEqual(Array.from(ya.labels), Array.from(yb.labels));
  const counts = new Array(10).fill(0);
  for (const y of ya.labels) counts[y]++;
  t.deepEqual(counts, new Array(10).fill(800));
  t.is(validateLabels(ya.labels), 10);
});

test('real course2025 X_COMP.npy (float32) loads as integer pixels', async (t) => {
  if (!haveShared) { t.log(`SKIPPED: ${SHARED} is absent, real-data checks not run`); t.pass(); return; }
  const file = path.join(SHARED, 'course2025', 'X_COMP.npy');
  const raw = await readArray(file);
  t.is(raw.dtype, 'float32');
  t.deepEqual(raw.shape, [1000, 784]);
  const x = await loadImages(file);
  t.deepEqual([x.n, x.rows, x.cols], [1000, 28, 28]);
  t.deepEqual(Array.from(x.images), Array.from(raw.data as Float32Array));
  const y = await loadLabels(path.join(SHARED, 'course2025', 'y_images.npy'));
  t.is(y.n, 5000);
  t.is(validateLabels(y.labels), 49);
});

test('real classmaps parse', async (t) => {
  if (!haveShared) { t.log(`SKIPPED: ${SHARED} is absent, real-data checks not run`); t.pass(); return; }
  const k49 = await loadClassmap(path.join(SHARED, 'k49', 'k49_classmap.csv'));
  t.is(k49.length, 49);
  t.is(k49[0], 'あ');
  t.is(k49[48], 'ゝ');
  const km = await loadClassmap(path.join(SHARED, 'kmnist', 'kmnist_classmap.csv'));
  t.deepEqual(km, ['お', 'き', 'す', 'つ', 'な', 'は', 'ま', 'や', 'れ', 'を']);
});

// ---------------------------------------------------------------------------------------------
// Hand-built files: every dtype, byte order, memory order, header version, container

const PIXELS = [0, 1, 2, 127, 100, 50, 3, 4, 5, 6, 7, 8]; // shape (2, 2, 3); fits every dtype
const CODES: Code[] = ['u1', 'i1', 'u2', 'i2', 'u4', 'i4', 'u8', 'i8', 'f4', 'f8'];

for (const code of CODES) {
  for (const bigEndian of SIZE[code] > 1 ? [false, true] : [false]) {
    test(`npy ${bigEndian ? '>' : '<'}${code} images and labels`, async (t) => {
      const vals = code.endsWith('8') && code !== 'f8' ? PIXELS.map(BigInt) : PIXELS;
      const img = await loadImages(tmpFile(npyOf(code, [2, 2, 3], vals, { bigEndian })));
      t.deepEqual([img.n, img.rows, img.cols], [2, 2, 3]);
      t.deepEqual(Array.from(img.images), PIXELS);
      const lab = await loadLabels(tmpFile(npyOf(code, [12], vals, { bigEndian })));
      t.deepEqual(Array.from(lab.labels), PIXELS);
    });
  }
}

test('npy bool and float16', async (t) => {
  const bools = [0, 1, 1, 0];
  const b = await loadImages(tmpFile(npy('|b1', [1, 4], Uint8Array.from(bools))));
  t.deepEqual(Array.from(b.images), bools);
  t.deepEqual([b.rows, b.cols], [2, 2]);
  // Bytes other than 0/1 in a bool array mean True, as in NumPy.
  const b2 = parseArray(npy('|b1', [3], Uint8Array.from([0, 2, 255])), 'x');
  t.deepEqual(Array.from(b2.data as Uint8Array), [0, 1, 1]);
  // float16 1, 2, 255, 0.5 little- and big-endian.
  const halfs = [0x3c00, 0x4000, 0x5bf8, 0x3800];
  for (const be of [false, true]) {
    const body = Buffer.alloc(8);
    halfs.forEach((h, i) => (be ? body.writeUInt16BE(h, 2 * i) : body.writeUInt16LE(h, 2 * i)));
    const a = parseArray(npy(be ? '>f2' : '<f2', [4], body), 'half');
    t.is(a.dtype, 'float16');
    t.deepEqual(Array.from(a.data as Float32Array), [1, 2, 255, 0.5]);
  }
});

test('fortran_order arrays are converted to C order (2-D and 3-D)', async (t) => {
  const c2 = Array.from({ length: 2 * 784 }, (_, i) => i % 256);
  const img2 = await loadImages(tmpFile(npyOf('u1', [2, 784], c2, { fortran: true })));
  t.deepEqual(Array.from(img2.images), c2);
  const c3 = Array.from({ length: 2 * 3 * 4 }, (_, i) => i * 10);
  for (const code of ['u1', 'f4', 'i8'] as Code[]) {
    const vals = code === 'i8' ? c3.map(BigInt) : c3;
    const img3 = await loadImages(tmpFile(npyOf(code, [2, 3, 4], vals, { fortran: true, bigEndian: code === 'f4' })));
    t.deepEqual(Array.from(img3.images), c3, code);
  }
  // Sanity check of the test's own writer: F order of [[0,1,2],[3,4,5]] is 0,3,1,4,2,5.
  t.deepEqual(toFortranOrder([0, 1, 2, 3, 4, 5], [2, 3]), [0, 3, 1, 4, 2, 5]);
});

test('npy header versions 2 and 3, and Python 2 style long ints', async (t) => {
  for (const version of [2, 3] as const) {
    const img = await loadImages(tmpFile(npyOf('u1', [1, 4], [1, 2, 3, 4], { version })));
    t.deepEqual(Array.from(img.images), [1, 2, 3, 4]);
  }
  const old = npy('', [], Uint8Array.from([5, 6]), { headerText: "{'descr': '|u1', 'fortran_order': False, 'shape': (2L,), }" });
  t.deepEqual(Array.from((await loadLabels(tmpFile(old))).labels), [5, 6]);
});

test('IDX images and labels, plain and gzipped', async (t) => {
  const pixels = Uint8Array.from({ length: 3 * 28 * 28 }, (_, i) => (i * 7) % 256);
  const labels = Uint8Array.from([3, 1, 4]);
  const imgIdx = idx(0x08, [3, 28, 28], pixels);
  const labIdx = idx(0x08, [3], labels);
  for (const gz of [false, true]) {
    const img = await loadImages(tmpFile(gz ? gzipSync(imgIdx) : imgIdx, 'train-images-idx3-ubyte'));
    t.deepEqual([img.n, img.rows, img.cols], [3, 28, 28]);
    t.true(Buffer.from(img.images).equals(Buffer.from(pixels)));
    const lab = await loadLabels(tmpFile(gz ? gzipSync(labIdx) : labIdx, 'labels.gz'));
    t.deepEqual(Array.from(lab.labels), [3, 1, 4]);
  }
  // Other IDX element types are big-endian.
  const i4 = Buffer.alloc(8);
  i4.writeInt32BE(7, 0);
  i4.writeInt32BE(300, 4);
  t.deepEqual(Array.from((await loadLabels(tmpFile(idx(0x0c, [2], i4)))).labels), [7, 300]);
  // A gzipped .npy is detected too.
  t.deepEqual(Array.from((await loadLabels(tmpFile(gzipSync(npyOf('i8', [2], [9n, 8n]))))).labels), [9, 8]);
});

test('npz: arr_0 by default, named arrays, stored or deflated, N×1 and float labels', async (t) => {
  const a = npyOf('u1', [2, 2, 2], [1, 2, 3, 4, 5, 6, 7, 8]);
  const b = npyOf('f8', [3, 1], [0, 2, 1]);
  for (const level of [0, 6] as const) {
    const zip = zipSync({ 'arr_0.npy': a, 'labels.npy': b }, { level });
    const f = tmpFile(zip, 'x.npz');
    t.deepEqual(Array.from((await loadImages(f)).images), [1, 2, 3, 4, 5, 6, 7, 8]);
    t.deepEqual(Array.from((await loadLabels(f, { arrayName: 'labels' })).labels), [0, 2, 1]);
    t.deepEqual(Array.from((await loadLabels(f, { arrayName: 'labels.npy' })).labels), [0, 2, 1]);
  }
});

// ---------------------------------------------------------------------------------------------
// Bad input: each gets its own specific error

test('missing file, directory, unknown format, empty file', async (t) => {
  const missing = path.join(tmp, 'nope.npy');
  await rejects(t, loadImages(missing), 'ENOENT', new RegExp(missing.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')));
  await rejects(t, loadImages(tmp), 'EISDIR');
  await rejects(t, loadImages(tmpFile(Buffer.from('index,codepoint,char\n'), 'x.npy')), 'EFORMAT', /not a \.npy\/\.npz\/IDX file/, /69 6e 64/);
  await rejects(t, loadImages(tmpFile(new Uint8Array(0))), 'EFORMAT', /empty/);
});

test('npy: truncated, trailing garbage, bad header, absurd shapes', async (t) => {
  const good = npyOf('f4', [2, 3], [1, 2, 3, 4, 5, 6]);
  const f1 = tmpFile(good.subarray(0, good.length - 4));
  const e = await rejects(t, loadImages(f1), 'ETRUNCATED', /needs 24 bytes/, /only 20/);
  t.true(e.message.startsWith(f1));
  await rejects(t, loadImages(tmpFile(Buffer.concat([good, Buffer.from('junk')]))), 'ETRAILING', /4 unexpected trailing bytes/);
  await rejects(t, loadImages(tmpFile(good.subarray(0, 9))), 'ETRUNCATED');
  await rejects(t, loadImages(tmpFile(good.subarray(0, 40))), 'ETRUNCATED', /header claims/);
  const badVersion = Buffer.from(good);
  badVersion[6] = 9;
  await rejects(t, loadImages(tmpFile(badVersion)), 'ENPY_VERSION', /version 9/);
  const badMagic = Buffer.from(good);
  badMagic[3] = 0x58;
  await rejects(t, loadImages(tmpFile(badMagic)), 'ENPY_MAGIC');
  const hdr = (text: string) => loadImages(tmpFile(npy('', [], new Uint8Array(0), { headerText: text })));
  await rejects(t, hdr("{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), "), 'ENPY_HEADER', /malformed/);
  await rejects(t, hdr("{'descr': '<f4', 'shape': (2, 3), }"), 'ENPY_HEADER', /keys/);
  await rejects(t, hdr("{'descr': '<f4', 'fortran_order': 0, 'shape': (2, 3), }"), 'ENPY_HEADER', /fortran_order/);
  await rejects(t, hdr("{'descr': '<f4', 'fortran_order': False, 'shape': (2, -3), }"), 'ENPY_HEADER', /shape/);
  await rejects(t, hdr("{'descr': '<f4', 'fortran_order': False, 'shape': (1000000000000, 1000000000000), }"), 'ESHAPE', /corrupt/);
  await rejects(t, hdr("{'descr': '<f4', 'fortran_order': False, 'shape': (4611686018427387904, 4611686018427387904), }"), 'ESHAPE');
  await rejects(t, hdr("{'descr': '<f4', 'fortran_order': False, 'shape': (99999999999999999999999,), }"), 'ESHAPE');
  await rejects(t, hdr("{'descr': '<U4', 'fortran_order': False, 'shape': (2,), }"), 'EDTYPE', /unsupported dtype '<U4'/);
  await rejects(t, hdr("{'descr': 'f4', 'fortran_order': False, 'shape': (2,), }"), 'EDTYPE', /byte order/);
  await rejects(t, hdr("{'descr': [('a', '<f4')], 'fortran_order': False, 'shape': (2,), }"), 'EDTYPE', /structured/);
  // Within the file, but the array is larger than the caller's limit.
  await rejects(t, loadImages(tmpFile(good), { maxBytes: 16 }), 'ETOO_LARGE');
});

test('npy: object / pickle arrays are refused', async (t) => {
  const pickled = npy('|O', [2], Buffer.from('\x80\x04\x95 pickle bytes'));
  await rejects(t, loadImages(tmpFile(pickled)), 'EPICKLE', /object array/, /pickle/);
  await rejects(t, loadLabels(tmpFile(npy('<O', [2], Buffer.alloc(16)))), 'EPICKLE');
});

test('images: NaN, Infinity, negative, 256 and non-integer pixels name the index and value', async (t) => {
  const cases: [number, RegExp][] = [[NaN, /NaN/], [Infinity, /Infinity/], [-1, /-1/], [256, /256/], [12.5, /12\.5/]];
  for (const [bad, re] of cases) {
    const vals = [0, 1, 2, 3, 4, 5, 6, 7];
    vals[5] = bad;
    const f = tmpFile(npyOf('f4', [2, 4], vals));
    const e = await rejects(t, loadImages(f), 'EPIXEL', re, /flat index 5 \(image 1, pixel 1\)/, /0\.\.255/);
    t.true(e.message.startsWith(f));
  }
  await rejects(t, loadImages(tmpFile(npyOf('i8', [1, 4], [0n, 1n, 300n, 2n]))), 'EPIXEL', /300 at flat index 2/);
  await rejects(t, loadImages(tmpFile(npyOf('i2', [1, 4], [0, -5, 0, 0]))), 'EPIXEL', /-5/);
  await rejects(t, loadImages(tmpFile(npyOf('u1', [2, 5], new Array(10).fill(0)))), 'ESHAPE', /not a square/);
  await rejects(t, loadImages(tmpFile(npyOf('u1', [4], [1, 2, 3, 4]))), 'ESHAPE', /label vector/);
  await rejects(t, loadImages(tmpFile(npyOf('u1', [0, 784], []))), 'ESHAPE', /no image data/);
});

test('images scaled to [0, 1] (every value k/255) are read back as k, float32 and float64; others are refused saying what to do', async (t) => {
  const ks = Array.from({ length: 256 }, (_, k) => k);
  const want = Uint8Array.from(ks);
  // float32 as NumPy writes x.astype(np.float32) / 255 (and x * (1/255)); float64 as x / 255
  const f32 = tmpFile(npyOf('f4', [4, 64], ks.map((k) => Math.fround(k / 255))));
  t.deepEqual((await loadImages(f32)).images, want);
  const f32r = tmpFile(npyOf('f4', [4, 64], ks.map((k) => Math.fround(k * Math.fround(1 / 255)))));
  t.deepEqual((await loadImages(f32r)).images, want);
  const f64 = tmpFile(npyOf('f8', [4, 8, 8], ks.map((k) => k / 255), { bigEndian: true }));
  t.deepEqual((await loadImages(f64)).images, want);
  const f64r = tmpFile(npyOf('f8', [4, 64], ks.map((k) => k * (1 / 255))));
  t.deepEqual((await loadImages(f64r)).images, want);
  // float16: k/255 rounded to half precision (value bits worked out by hand for k = 1, 128, 255)
  const half = npy('<f2', [1, 4], Buffer.from(new Uint16Array([0x0000, 0x1c04, 0x3804, 0x3c00]).buffer));
  t.deepEqual([...(await loadImages(tmpFile(half))).images], [0, 1, 128, 255]);

  // [0, 1] but not a multiple of 1/255: refused, naming the value and what to do
  const vals = [0, 1 / 255, 1, 0.5, 0.2, 0, 0, 0].map(Math.fround);
  await rejects(t, loadImages(tmpFile(npyOf('f4', [2, 4], vals))), 'EPIXEL',
    /values lie in \[0, 1\] but 0\.5 at flat index 3 \(image 0, pixel 3\) is not a multiple of 1\/255 \(dtype float32\).*multiply by 255 and round, or save uint8/);
  // a float64 k/255 stored in float32 precision is not the float64 value: refused (it is not exactly k/255 as float64)
  const off = ks.map((k) => k / 255);
  off[7] = Math.fround(7 / 255);
  await rejects(t, loadImages(tmpFile(npyOf('f8', [4, 64], off))), 'EPIXEL', /0\.02745\d+ at flat index 7 .* is not a multiple of 1\/255 \(dtype float64\)/);
  // one float32 step below k/255: no k/255 however computed
  const near = ks.map((k) => Math.fround(k / 255));
  near[100] = Math.fround(near[100] - 2 ** -25); // the next float32 down (ulp at 0.39 is 2^-25)
  await rejects(t, loadImages(tmpFile(npyOf('f4', [4, 64], near))), 'EPIXEL', /at flat index 100 /);
  // values beyond 1 that are not integers: today's message, with the advice
  await rejects(t, loadImages(tmpFile(npyOf('f4', [1, 4], [0, 0.5, 2, 3]))), 'EPIXEL', /pixel value 0\.5 at flat index 1 .*not an integer in 0\.\.255 \(dtype float32\), nor are the values scaled to \[0, 1\]: save the images as integers 0\.\.255/);
  // integer dtypes never take the [0, 1] reading; float 0/1 data stay the integers 0 and 1 (as before)
  t.deepEqual([...(await loadImages(tmpFile(npyOf('f4', [1, 4], [0, 1, 1, 0])))).images], [0, 1, 1, 0]);
});

test('error messages name the file once', async (t) => {
  const once = (message: string, path: string) => message.split(path).length - 1;
  const wrongShape = tmpFile(npyOf('u1', [2, 5], new Array(10).fill(0)), 'X32.npy');
  const wrongDtype = tmpFile(npy('<c8', [2], Buffer.alloc(16)), 'X32.npy');
  const corrupt = tmpFile(Buffer.concat([Buffer.from(npyOf('u1', [2, 4], new Array(8).fill(0))).subarray(0, 70)]), 'X32.npy');
  const badPixel = tmpFile(npyOf('f4', [1, 4], [0, 0.5, 2, 3]), 'X32.npy');
  for (const path of [wrongShape, wrongDtype, corrupt, badPixel]) {
    const e = await t.throwsAsync(loadImages(path), { instanceOf: DataError });
    t.is(once(e!.message, path), 1, e!.message);
    t.is(e!.message.split('X32.npy').length - 1, 1, e!.message);
  }
  const gz = tmpFile(gzipSync(Buffer.from('not numpy at all')), 'X32.npy.gz');
  const e = await t.throwsAsync(loadImages(gz), { instanceOf: DataError });
  t.is(e!.message.split('X32.npy').length - 1, 1, e!.message);

  // images and labels that do not match (loadInputs): each file named once
  const { loadInputs } = await import('../src/data/inputs');
  const images = tmpFile(npyOf('u1', [3, 4], new Array(12).fill(0)), 'X32.npy');
  const labels = tmpFile(npyOf('u1', [2], [0, 1]), 'y32.npy');
  const m = await t.throwsAsync(loadInputs({ images, labels, seed: 1 }), { instanceOf: DataError });
  t.regex(m!.message, /3 images .* 2 labels/);
  t.is(once(m!.message, images), 1, m!.message);
  t.is(once(m!.message, labels), 1, m!.message);
  // a classmap naming too few classes
  const cm = tmpFile(Buffer.from('index,codepoint,char\n0,U+3042,あ\n'), 'classmap.csv');
  const fine = tmpFile(npyOf('u1', [2], [0, 1]), 'y32.npy');
  const images2 = tmpFile(npyOf('u1', [2, 4], new Array(8).fill(0)), 'X32.npy');
  const c = await t.throwsAsync(loadInputs({ images: images2, labels: fine, classmap: cm, seed: 1, split: { train: 1, validation: 0, test: 0 } }), { instanceOf: DataError });
  t.is(once(c!.message, cm), 1, c!.message);
});

test('labels: negative, non-integer, NaN, wrong shape', async (t) => {
  await rejects(t, loadLabels(tmpFile(npyOf('i8', [3], [0n, -1n, 2n]))), 'ELABEL', /label -1 at index 1/);
  await rejects(t, loadLabels(tmpFile(npyOf('f8', [3], [0, 1.5, 2]))), 'ELABEL', /1\.5 at index 1/);
  await rejects(t, loadLabels(tmpFile(npyOf('f4', [2], [NaN, 1]))), 'ELABEL', /NaN at index 0/);
  await rejects(t, loadLabels(tmpFile(npyOf('i8', [1], [2n ** 40n]))), 'ELABEL', /1099511627776/);
  await rejects(t, loadLabels(tmpFile(npyOf('u1', [2, 2], [0, 1, 2, 3]))), 'ESHAPE', /1-D or N×1/);
});

test('npz: not a zip, missing arr_0, oversize members refused before inflating', async (t) => {
  await rejects(t, loadImages(tmpFile(Buffer.from('PK\x03\x04 this is not really a zip archive'), 'bad.npz')), 'EZIP', /not a readable/);
  const zip = zipSync({ 'images.npy': npyOf('u1', [1, 4], [1, 2, 3, 4]), 'labels.npy': npyOf('u1', [1], [0]) });
  const f = tmpFile(zip, 'named.npz');
  await rejects(t, loadImages(f), 'ENO_ARRAY', /no array 'arr_0'/, /contains: images, labels/);
  await rejects(t, loadImages(tmpFile(zipSync({}), 'empty.npz')), 'ENO_ARRAY', /contains: nothing/);
  // A real member bigger than the caller's limit.
  const big = zipSync({ 'arr_0.npy': npyOf('u1', [10, 784], new Array(7840).fill(0)) }, { level: 9 });
  await rejects(t, loadImages(tmpFile(big), { maxBytes: 4096 }), 'ETOO_LARGE', /arr_0\.npy declares 7968 uncompressed bytes/);
  // A directory entry claiming 3 GiB: refused by the limit, never allocated.
  const bomb = Buffer.from(big);
  const cd = bomb.lastIndexOf(Buffer.from([0x50, 0x4b, 0x01, 0x02]));
  bomb.writeUInt32LE(3 * 2 ** 30, cd + 24);
  await rejects(t, loadImages(tmpFile(bomb), { maxBytes: 2 ** 30 }), 'ETOO_LARGE', /3221225472/);
  // ... and under the default limit, refused as a claim deflate could not produce.
  await rejects(t, loadImages(tmpFile(bomb)), 'EZIP', /claims 3221225472 bytes/);
  // The member itself is checked as a .npy.
  const inner = zipSync({ 'arr_0.npy': npyOf('u1', [2, 4], [1, 2, 3, 4, 5, 6, 7, 8]).subarray(0, 130) });
  await rejects(t, loadImages(tmpFile(inner, 'short.npz')), 'ETRUNCATED', /short\.npz:arr_0\.npy: truncated/);
});

test('IDX: wrong magic, short header, short data, corrupt gzip', async (t) => {
  const good = idx(0x08, [2, 2, 2], Uint8Array.from([1, 2, 3, 4, 5, 6, 7, 8]));
  const wrongType = Buffer.from(good);
  wrongType[2] = 0x0a;
  await rejects(t, loadImages(tmpFile(wrongType)), 'EIDX_MAGIC', /0x00000a03/, /0x00000803/);
  const noDims = Buffer.from(good);
  noDims[3] = 0;
  await rejects(t, loadImages(tmpFile(noDims)), 'EIDX_MAGIC');
  await rejects(t, loadImages(tmpFile(good.subarray(0, 10))), 'ETRUNCATED', /IDX header/);
  await rejects(t, loadImages(tmpFile(good.subarray(0, good.length - 3))), 'ETRUNCATED', /needs 8 bytes/, /only 5/);
  await rejects(t, loadImages(tmpFile(gzipSync(good.subarray(0, good.length - 1)))), 'ETRUNCATED', /gunzipped/);
  const gz = gzipSync(good);
  await rejects(t, loadImages(tmpFile(gz.subarray(0, gz.length - 12))), 'EGZIP');
});

test('validateLabels', (t) => {
  t.is(validateLabels([0, 3, 1]), 4);
  t.is(validateLabels(Int32Array.from([0, 3, 1]), 10), 10);
  t.throws(() => validateLabels([0, 10], 10), { instanceOf: DataError, message: /label 10 at index 1 is out of range for 10 classes/ });
  t.throws(() => validateLabels([0, -1]), { instanceOf: DataError, message: /-1 at index 1/ });
  t.throws(() => validateLabels([0, 0.5]), { instanceOf: DataError });
  t.throws(() => validateLabels([]), { instanceOf: DataError });
  t.throws(() => validateLabels([0], 0), { instanceOf: DataError, message: /positive integer/ });
});

test('classmap errors', (t) => {
  const ok = 'index,codepoint,char\n0,U+3042,あ\r\n1,U+3044,い\n';
  t.deepEqual(parseClassmap(ok), ['あ', 'い']);
  t.deepEqual(parseClassmap('\uFEFF' + ok), ['あ', 'い']);
  const bad = (text: string, re: RegExp) => t.throws(() => parseClassmap(text, 'cm.csv'), { instanceOf: DataError, message: re });
  bad('0,U+3042,あ\n', /header line/);
  bad('index,codepoint,char\n0,U+3042\n', /line 2 .* is not "index,U\+XXXX,char"/);
  bad('index,codepoint,char\nx,U+3042,あ\n', /line 2/);
  bad('index,codepoint,char\n0,U+3042,あ\n0,U+3044,い\n', /duplicate class index 0/);
  bad('index,codepoint,char\n0,U+3042,あ\n2,U+3044,い\n', /class index 1 is missing/);
  bad('index,codepoint,char\n0,U+3042,い\n', /does not match code point U\+3042/);
  bad('index,codepoint,char\n', /no classes/);
});

// ---------------------------------------------------------------------------------------------
// Properties

const FC = { numRuns: 1000, seed: 20250101 };

const arbArray = fc
  .record({
    code: fc.constantFrom<Code>('b1', 'u1', 'i1', 'u2', 'i2', 'u4', 'i4', 'u8', 'i8', 'f4', 'f8'),
    shape: fc.array(fc.integer({ min: 0, max: 4 }), { minLength: 1, maxLength: 3 }),
    bigEndian: fc.boolean(),
    fortran: fc.boolean(),
    version: fc.constantFrom<1 | 2 | 3>(1, 2, 3),
  })
  .chain((r) => {
    const n = r.shape.reduce((a, b) => a * b, 1);
    const elem: Record<Code, fc.Arbitrary<number | bigint>> = {
      b1: fc.integer({ min: 0, max: 1 }),
      u1: fc.integer({ min: 0, max: 255 }),
      i1: fc.integer({ min: -128, max: 127 }),
      u2: fc.integer({ min: 0, max: 0xffff }),
      i2: fc.integer({ min: -0x8000, max: 0x7fff }),
      u4: fc.integer({ min: 0, max: 0xffffffff }),
      i4: fc.integer(),
      u8: fc.bigInt({ min: 0n, max: 2n ** 64n - 1n }),
      i8: fc.bigInt({ min: -(2n ** 63n), max: 2n ** 63n - 1n }),
      f4: fc.float(),
      f8: fc.double(),
    };
    return fc.array(elem[r.code], { minLength: n, maxLength: n }).map((values) => ({ ...r, values }));
  });

test('property: random valid arrays round-trip through the npy writer', (t) => {
  fc.assert(
    fc.property(arbArray, (r) => {
      const bytes = npyOf(r.code, r.shape, r.values, r);
      const a = parseArray(bytes, 'prop.npy');
      if (JSON.stringify(a.shape) !== JSON.stringify(r.shape)) return false;
      const got = Array.from(a.data as ArrayLike<number | bigint>);
      return got.length === r.values.length && got.every((v, i) => Object.is(v, r.values[i]));
    }),
    FC,
  );
  t.pass();
});

test('property: mutated npy/npz/IDX files throw nothing but DataError', (t) => {
  const bases = [
    npyOf('u1', [2, 2, 2], [1, 2, 3, 4, 5, 6, 7, 8]),
    npyOf('f4', [2, 4], [0, 1, 2, 3, 4, 5, 6, 7], { fortran: true }),
    npyOf('i8', [3], [1n, 2n, 3n], { bigEndian: true, version: 2 }),
    npyOf('f8', [2, 1], [1, 0], { version: 3 }),
    zipSync({ 'arr_0.npy': npyOf('u1', [1, 4], [1, 2, 3, 4]) }),
    idx(0x08, [2, 2, 2], Uint8Array.from([1, 2, 3, 4, 5, 6, 7, 8])),
    gzipSync(idx(0x08, [3], Uint8Array.from([1, 2, 3]))),
  ];
  const mutation = fc.oneof(
    fc.record({ kind: fc.constant('set' as const), pos: fc.nat(), byte: fc.integer({ min: 0, max: 255 }) }),
    fc.record({ kind: fc.constant('cut' as const), pos: fc.nat(), byte: fc.constant(0) }),
    fc.record({ kind: fc.constant('add' as const), pos: fc.nat(), byte: fc.integer({ min: 0, max: 255 }) }),
  );
  fc.assert(
    fc.property(fc.nat({ max: bases.length - 1 }), fc.array(mutation, { minLength: 1, maxLength: 6 }), (which, muts) => {
      let bytes = Buffer.from(bases[which]);
      for (const m of muts) {
        const pos = bytes.length ? m.pos % bytes.length : 0;
        if (m.kind === 'set' && bytes.length) bytes[pos] = m.byte;
        else if (m.kind === 'cut') bytes = bytes.subarray(0, pos);
        else bytes = Buffer.concat([bytes.subarray(0, pos), Buffer.from([m.byte]), bytes.subarray(pos)]);
      }
      for (const use of [toImages, toLabels]) {
        try {
          use(parseArray(bytes, 'mutant'), 'mutant');
        } catch (e) {
          if (!(e instanceof DataError)) throw e;
        }
      }
    }),
    FC,
  );
  t.pass();
});

// ---------------------------------------------------------------------------------------------
// Crafted files (issue K): bombs and prototype names

/** `zip` (one member) with its central directory listing that member `copies` times. */
function duplicateMembers(zip: Uint8Array, copies: number, rename?: (i: number) => string | undefined): Uint8Array {
  const b = Buffer.from(zip);
  const eocd = b.lastIndexOf(Buffer.from([0x50, 0x4b, 0x05, 0x06]));
  const cdSize = b.readUInt32LE(eocd + 12);
  const cdOff = b.readUInt32LE(eocd + 16);
  const entry = b.subarray(cdOff, cdOff + cdSize);
  const entries: Buffer[] = [];
  for (let i = 0; i < copies; i++) {
    const name = rename?.(i);
    if (name === undefined) { entries.push(entry); continue; }
    // same data, another name in the directory
    const nameLen = entry.readUInt16LE(28);
    const head = Buffer.from(entry.subarray(0, 46));
    const nb = Buffer.from(name, 'latin1');
    head.writeUInt16LE(nb.length, 28);
    entries.push(Buffer.concat([head, nb, entry.subarray(46 + nameLen)]));
  }
  const cd = Buffer.concat(entries);
  const end = Buffer.from(b.subarray(eocd, eocd + 22));
  end.writeUInt16LE(copies, 8);
  end.writeUInt16LE(copies, 10);
  end.writeUInt32LE(cd.length, 12);
  return Buffer.concat([b.subarray(0, cdOff), cd, end]);
}

/** Milliseconds a synchronous call takes (it may throw): no other test can run meanwhile. */
function syncMs(f: () => unknown): number {
  const started = performance.now();
  try { f(); } catch { /* the time is what counts */ }
  return performance.now() - started;
}

test('npz: a member listed more than once is refused before it is inflated again', async (t) => {
  const zip = zipSync({ 'arr_0.npy': npyOf('u1', [2, 4], [1, 2, 3, 4, 5, 6, 7, 8]) }, { level: 6 });
  // the helper keeps a one-listing archive valid
  t.is((await loadImages(tmpFile(duplicateMembers(zip, 1), 'once.npz'))).n, 2);
  await rejects(t, loadImages(tmpFile(duplicateMembers(zip, 3000), 'dup.npz')), 'EZIP', /lists the member "arr_0\.npy" more than once/);
  t.true(syncMs(() => parseArray(duplicateMembers(zip, 3000), 'dup.npz')) < 1000);
  // a duplicate of another member is refused too
  await rejects(t, loadImages(tmpFile(duplicateMembers(zip, 3, (i) => (i === 0 ? undefined : 'other.npy')), 'dup2.npz')), 'EZIP', /"other\.npy" more than once/);
});

test('npy: thousands of dimensions are refused before any work, and the message stays short', async (t) => {
  for (const fortran of [false, true]) {
    const shape = [200, ...new Array(4000).fill(1), 4];
    const bytes = npy('|u1', shape, new Uint8Array(800), { fortran, version: 1 });
    const e = await rejects(t, loadImages(tmpFile(bytes, 'dims.npy')), 'ESHAPE', /4002 dimensions, more than 64/);
    t.true(e.message.length < 300, `message of ${e.message.length} characters`);
    t.true(syncMs(() => parseArray(bytes, 'dims.npy')) < 1000);
  }
  // a header longer than any NumPy writes (version 2: 4-byte length)
  const long = npy('|u1', [1], new Uint8Array(1), { version: 2, headerText: `{'descr': '|u1', 'fortran_order': False, 'shape': (1,), }${' '.repeat(70000)}` });
  await rejects(t, loadImages(tmpFile(long, 'long.npy')), 'ENPY_HEADER', /header is \d+ bytes, more than the 65536/);
  // long values in messages are clipped
  const descr = npy('<' + 'x'.repeat(5000), [1], new Uint8Array(1));
  const e = await rejects(t, loadImages(tmpFile(descr, 'descr.npy')), 'EDTYPE', /unsupported dtype/);
  t.true(e.message.length < 400, `message of ${e.message.length} characters`);
});

test('npy: descr naming an Object.prototype property is an unsupported dtype (DataError), not a TypeError', async (t) => {
  for (const descr of ['<__proto__', '<constructor', '<toString', '|hasOwnProperty', '__proto__']) {
    await rejects(t, () => parseArray(npy(descr, [1], new Uint8Array(1)), 'proto.npy'), 'EDTYPE', /unsupported dtype/);
  }
});

test('property: crafted archives (duplicate members) and headers (many dimensions, long values) throw nothing but a short DataError, quickly', (t) => {
  const zip = zipSync({ 'arr_0.npy': npyOf('u1', [1, 4], [1, 2, 3, 4]), 'labels.npy': npyOf('u1', [1], [0]) });
  const counts: Record<string, number> = {};
  const crafted = fc.oneof(
    fc.record({ kind: fc.constant('zip' as const), copies: fc.integer({ min: 2, max: 4000 }), names: fc.array(fc.constantFrom(undefined, 'arr_0.npy', 'labels.npy', '__proto__', 'constructor'), { maxLength: 8 }) }),
    fc.record({ kind: fc.constant('npy' as const), ndim: fc.integer({ min: 0, max: 6000 }), unit: fc.boolean(), fortran: fc.boolean(), version: fc.constantFrom<1 | 2 | 3>(1, 2, 3), descr: fc.oneof(fc.constantFrom('|u1', '<f4', '<__proto__', '<constructor', '<valueOf'), fc.string({ maxLength: 3000 }).map((s) => `<${s.replace(/['\\]/g, '')}`)) }),
  );
  fc.assert(
    fc.property(crafted, (c) => {
      let bytes: Uint8Array;
      if (c.kind === 'zip') bytes = duplicateMembers(zip, c.copies, (i) => c.names[i % Math.max(1, c.names.length)]);
      else {
        const shape = c.ndim === 0 ? [] : [2, ...new Array(c.ndim - 1).fill(c.unit ? 1 : 2)].slice(0, c.ndim);
        const n = c.unit || c.ndim < 2 ? 2 : 0; // 2^ndim elements is no test: only unit shapes carry data
        bytes = npy(c.descr, c.unit ? shape : shape.map(() => 0), new Uint8Array(n), { fortran: c.fortran, version: c.version });
      }
      const started = Date.now();
      let outcome = 'read';
      try {
        parseArray(bytes, 'crafted');
      } catch (e) {
        if (!(e instanceof DataError)) throw e;
        if (e.message.length > 700) throw new Error(`a ${e.message.length}-character message: ${e.message.slice(0, 200)}`);
        outcome = e.code;
      }
      if (Date.now() - started > 3000) throw new Error(`${c.kind} took ${Date.now() - started} ms`);
      counts[`${c.kind} ${outcome}`] = (counts[`${c.kind} ${outcome}`] ?? 0) + 1;
    }),
    { numRuns: 300, seed: 20261201 },
  );
  t.log(`300 crafted files: ${JSON.stringify(counts)}`);
  t.pass();
});
