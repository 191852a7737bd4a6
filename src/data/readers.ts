/**
 * Reading image and label arrays from .npy, .npz and IDX (optionally gzipped) files.
 *
 * Every failure is a `DataError` whose message names the file and says what is wrong with it:
 * datasets arrive from many hands (course files, official Kuzushiji npz, MNIST-style IDX), and
 * "Invalid typed array length" three layers down is no help to someone holding a broken download.
 *
 * The format is detected from magic bytes, never from the extension, because renamed files are
 * common (a `.npy` that is really an `.npz`, an `-ubyte` file that is still gzipped).
 */
import { promises as fsp } from 'node:fs';
import { constants as bufferConstants } from 'node:buffer';
import { gunzipSync } from 'node:zlib';
import { unzipSync } from 'fflate';

/** An error in the data itself (or its file), as opposed to a bug in this program. */
export class DataError extends Error {
  /** Stable machine-readable reason, e.g. 'ENOENT', 'ETRUNCATED', 'EPIXEL'. */
  readonly code: string;
  /** The file (or `archive.npz:member.npy`) the problem was found in, when there is one. */
  readonly file?: string;
  /** `file` prefixes the message (`file: message`), so the message itself must not name it again. */
  constructor(code: string, message: string, file?: string) {
    super(file === undefined ? message : `${file}: ${message}`);
    this.name = 'DataError';
    this.code = code;
    this.file = file;
  }
}

export type NumericArray =
  | Uint8Array | Int8Array | Int16Array | Uint16Array | Int32Array | Uint32Array
  | Float32Array | Float64Array | BigInt64Array | BigUint64Array;

/** A decoded array: C order, native (little-endian) values. */
export interface NdArray {
  /** NumPy-style name: 'uint8', 'int64', 'float32', 'bool', ... */
  dtype: string;
  shape: number[];
  data: NumericArray;
}

export interface LoadOptions {
  /** Array to read from an .npz ('arr_0' by default; with or without '.npy'). */
  arrayName?: string;
  /** Refuse files, archive members and decompressed data larger than this many bytes. */
  maxBytes?: number;
}

/** 4 GiB, or less where this Node cannot allocate a Buffer that large. */
export const DEFAULT_MAX_BYTES = Math.min(4 * 2 ** 30, bufferConstants.MAX_LENGTH);

// ---------------------------------------------------------------------------------------------
// dtypes

interface DType {
  name: string;
  size: number;
  /** Build a typed array over an aligned, little-endian copy or view of the bytes. */
  make: (buf: ArrayBuffer, byteOffset: number, length: number) => NumericArray;
}

const DTYPES: Record<string, DType> = {
  b1: { name: 'bool', size: 1, make: (b, o, n) => new Uint8Array(b, o, n) },
  u1: { name: 'uint8', size: 1, make: (b, o, n) => new Uint8Array(b, o, n) },
  i1: { name: 'int8', size: 1, make: (b, o, n) => new Int8Array(b, o, n) },
  u2: { name: 'uint16', size: 2, make: (b, o, n) => new Uint16Array(b, o, n) },
  i2: { name: 'int16', size: 2, make: (b, o, n) => new Int16Array(b, o, n) },
  u4: { name: 'uint32', size: 4, make: (b, o, n) => new Uint32Array(b, o, n) },
  i4: { name: 'int32', size: 4, make: (b, o, n) => new Int32Array(b, o, n) },
  u8: { name: 'uint64', size: 8, make: (b, o, n) => new BigUint64Array(b, o, n) },
  i8: { name: 'int64', size: 8, make: (b, o, n) => new BigInt64Array(b, o, n) },
  // float16 has no typed array in Node 20; decodeValues widens it to float32.
  f2: { name: 'float16', size: 2, make: (b, o, n) => new Uint16Array(b, o, n) },
  f4: { name: 'float32', size: 4, make: (b, o, n) => new Float32Array(b, o, n) },
  f8: { name: 'float64', size: 8, make: (b, o, n) => new Float64Array(b, o, n) },
};

function halfToFloat(h: number): number {
  const sign = h & 0x8000 ? -1 : 1;
  const exp = (h >> 10) & 0x1f;
  const frac = h & 0x3ff;
  if (exp === 0) return sign * frac * 2 ** -24;
  if (exp === 0x1f) return frac ? NaN : sign * Infinity;
  return sign * (1 + frac / 1024) * 2 ** (exp - 15);
}

/**
 * Turn raw element bytes into a typed array. Aligned little-endian data is viewed in place
 * (uint8 images of a 200 MB file should not be copied); anything else is copied once,
 * byte-swapped if big-endian. All supported hosts (x64, arm64) are little-endian.
 */
function decodeValues(bytes: Uint8Array, offset: number, count: number, dt: DType, bigEndian: boolean): NumericArray {
  const start = bytes.byteOffset + offset;
  let out: NumericArray;
  if ((!bigEndian || dt.size === 1) && start % dt.size === 0) {
    out = dt.make(bytes.buffer as ArrayBuffer, start, count);
  } else {
    // Not bytes.slice(): on a Buffer that is a view, and swapping would corrupt the source.
    const copy = new Uint8Array(count * dt.size);
    copy.set(bytes.subarray(offset, offset + count * dt.size));
    if (bigEndian && dt.size > 1) {
      // Buffer's native swap16/32/64: a JS per-element loop is 5-20x slower on big arrays.
      const view = Buffer.from(copy.buffer, 0, copy.length);
      if (dt.size === 2) view.swap16();
      else if (dt.size === 4) view.swap32();
      else view.swap64();
    }
    out = dt.make(copy.buffer, 0, count);
  }
  if (dt.name === 'float16') {
    const wide = new Float32Array(count);
    for (let i = 0; i < count; i++) wide[i] = halfToFloat(out[i] as number);
    return wide;
  }
  if (dt.name === 'bool') {
    // NumPy reads any non-zero byte as True; normalise so pixels/labels see exactly 0 or 1.
    const u = out as Uint8Array;
    if (u.some((v) => v > 1)) return u.map((v) => (v ? 1 : 0));
  }
  return out;
}

/** Fortran (column-major) data → C (row-major) order, for any number of dimensions. */
function fortranToC(data: NumericArray, fullShape: number[]): NumericArray {
  // Unit dimensions do not change the order; dropped, the index below advances in O(1) amortised
  // per element (with them, O(ndim) each: thousands of (…, 1, 1, …) once took seconds per sample).
  const shape = fullShape.filter((d) => d !== 1);
  if (shape.length < 2 || data.length === 0) return data;
  const out = new (data.constructor as { new (n: number): NumericArray })(data.length);
  const nd = shape.length;
  const fStride: number[] = [];
  let s = 1;
  for (let d = 0; d < nd; d++) { fStride.push(s); s *= shape[d]; }
  const idx = new Array<number>(nd).fill(0);
  let src = 0;
  for (let i = 0; i < data.length; i++) {
    (out as unknown as number[])[i] = (data as unknown as number[])[src];
    // Advance the C-order multi-index (last dimension fastest), tracking the Fortran offset.
    for (let d = nd - 1; d >= 0; d--) {
      idx[d]++;
      src += fStride[d];
      if (idx[d] < shape[d]) break;
      src -= fStride[d] * shape[d];
      idx[d] = 0;
    }
  }
  return out;
}

/** `text` cut to `max` characters (an ellipsis and the full length after): crafted headers can be huge. */
export function clipText(text: string, max = 200): string {
  return text.length <= max ? text : `${text.slice(0, max)}… (${text.length} characters)`;
}

/** Python's tuple spelling, so messages match what `arr.shape` printed where the file was made. */
function fmtShape(s: number[]): string {
  return clipText(s.length === 1 ? `(${s[0]},)` : `(${s.join(', ')})`);
}

/**
 * Check the data region is exactly what the shape needs. BigInt, because a corrupt header's
 * shape product can overflow doubles long before anyone could allocate it.
 */
function checkDataLength(file: string, shape: number[], itemSize: number, available: number, maxBytes: number): number {
  let count = shape.includes(0) ? 0n : 1n;
  // Stop multiplying once past the limit: a mangled header can hold thousands of dimensions.
  for (const d of shape) if (count <= BigInt(maxBytes)) count *= BigInt(d);
  const need = count * BigInt(itemSize);
  const shapeText = fmtShape(shape);
  if (need > BigInt(maxBytes)) {
    // `need` may be a partial product here, so only say "more than".
    if (need > BigInt(available)) {
      throw new DataError('ESHAPE', `shape ${shapeText} needs more than ${maxBytes} bytes of data (the limit) but only ${available} are present: the header is corrupt`, file);
    }
    throw new DataError('ETOO_LARGE', `array of shape ${shapeText} is larger than the ${maxBytes}-byte limit`, file);
  }
  if (need > BigInt(available)) {
    throw new DataError('ETRUNCATED', `truncated: shape ${shapeText} needs ${need} bytes of data but only ${available} are present`, file);
  }
  if (need < BigInt(available)) {
    throw new DataError('ETRAILING', `${BigInt(available) - need} unexpected trailing bytes after the ${need} bytes of data for shape ${shapeText}`, file);
  }
  return Number(count);
}

// ---------------------------------------------------------------------------------------------
// .npy

type PyValue = string | number | boolean | null | PyValue[] | { [k: string]: PyValue };

/**
 * A tiny parser for the Python literal NumPy writes as the header (a dict of str, bool and
 * tuples of int). Hand-written rather than regex-based so that a damaged header is reported
 * precisely instead of half-matching.
 */
function parsePyLiteral(text: string, file: string): PyValue {
  let pos = 0;
  const fail = (why: string): never => {
    throw new DataError('ENPY_HEADER', `malformed .npy header (${why} at character ${pos}): ${JSON.stringify(text.slice(0, 200))}`, file);
  };
  const ws = () => { while (pos < text.length && /\s/.test(text[pos])) pos++; };
  const value = (depth: number): PyValue => {
    if (depth > 16) fail('nesting too deep');
    ws();
    const c = text[pos];
    if (c === "'" || c === '"') {
      const end = text.indexOf(c, pos + 1);
      if (end < 0) fail('unterminated string');
      const s = text.slice(pos + 1, end);
      pos = end + 1;
      return s;
    }
    if (c === '{' || c === '(' || c === '[') {
      const close = c === '{' ? '}' : c === '(' ? ')' : ']';
      pos++;
      const items: PyValue[] = [];
      const dict: { [k: string]: PyValue } = Object.create(null); // no '__proto__' surprises
      for (;;) {
        ws();
        if (text[pos] === close) { pos++; break; }
        if (c === '{') {
          const k = value(depth + 1);
          if (typeof k !== 'string') fail('dict key is not a string');
          ws();
          if (text[pos] !== ':') fail("expected ':'");
          pos++;
          if (Object.prototype.hasOwnProperty.call(dict, k as string)) fail(`duplicate key '${clipText(k as string, 60)}'`);
          dict[k as string] = value(depth + 1);
        } else {
          items.push(value(depth + 1));
        }
        ws();
        if (text[pos] === ',') pos++;
        else if (text[pos] !== close) fail(`expected ',' or '${close}'`);
      }
      return c === '{' ? dict : items;
    }
    const m = /^(-?\d+)L?|^(True|False|None)\b/.exec(text.slice(pos, pos + 32));
    if (!m) return fail('unexpected token');
    pos += m[0].length;
    if (m[2] !== undefined) return m[2] === 'None' ? null : m[2] === 'True';
    const n = Number(m[1]);
    // Digits beyond 2^53 cannot be a real dimension; Infinity makes the shape check refuse them.
    return Number.isSafeInteger(n) ? n : Infinity;
  };
  const v = value(0);
  ws();
  if (pos !== text.length) fail('unexpected text after the dict');
  return v;
}

const NPY_MAGIC = [0x93, 0x4e, 0x55, 0x4d, 0x50, 0x59]; // \x93NUMPY
/**
 * The largest .npy header read (NumPy itself refuses more than 10000 bytes by default since 1.24),
 * and the most dimensions (NumPy's own limit is 32, 64 from NumPy 2). Checked before any work.
 */
export const MAX_NPY_HEADER = 65536;
export const MAX_NDIM = 64;

/** What a .npy header says, checked against the file's size: where the data starts and what it is. */
export interface ArrayLayout {
  dtype: string;
  shape: number[];
  /** Element size in bytes. */
  itemSize: number;
  bigEndian: boolean;
  fortran: boolean;
  /** Byte offset of the data in the file (or archive member). */
  dataStart: number;
  /** Number of elements. */
  count: number;
  /** @internal */
  dt: DType;
}

/**
 * Parse and check a .npy header. `bytes` is the start of the file (at least its preamble and
 * header, when the file holds them: 12 + MAX_NPY_HEADER bytes are always enough) and `size` the
 * whole file's length: every check and message is the one a parse of the whole file gives.
 */
export function parseNpyHeader(bytes: Uint8Array, size: number, file: string, maxBytes: number): ArrayLayout {
  if (!NPY_MAGIC.every((b, i) => i >= size || bytes[i] === b)) {
    throw new DataError('ENPY_MAGIC', 'not a .npy array (missing \\x93NUMPY magic)', file);
  }
  if (size < 8) throw new DataError('ETRUNCATED', `truncated .npy: only ${size} bytes`, file);
  const major = bytes[6];
  if (major < 1 || major > 3) {
    throw new DataError('ENPY_VERSION', `unsupported .npy format version ${major}.${bytes[7]} (this reader knows 1.x, 2.x and 3.x)`, file);
  }
  const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const prefix = major === 1 ? 10 : 12;
  if (size < prefix) throw new DataError('ETRUNCATED', `truncated .npy: ${size} bytes is shorter than the version ${major} preamble`, file);
  const headerLen = major === 1 ? dv.getUint16(8, true) : dv.getUint32(8, true);
  const dataStart = prefix + headerLen;
  if (headerLen > MAX_NPY_HEADER) {
    throw new DataError('ENPY_HEADER', `the .npy header is ${headerLen} bytes, more than the ${MAX_NPY_HEADER} this reader accepts (NumPy writes a few hundred)`, file);
  }
  if (dataStart > size) {
    throw new DataError('ETRUNCATED', `truncated .npy: header claims ${headerLen} bytes but the file ends after ${size - prefix}`, file);
  }
  // Versions 1 and 2 store the header as latin-1; version 3 allows UTF-8 (for structured field names).
  const headerText = Buffer.from(bytes.buffer, bytes.byteOffset + prefix, headerLen).toString(major === 3 ? 'utf8' : 'latin1');
  const header = parsePyLiteral(headerText, file);
  if (header === null || typeof header !== 'object' || Array.isArray(header)) {
    throw new DataError('ENPY_HEADER', 'malformed .npy header: not a dict', file);
  }
  const keys = Object.keys(header).sort().join(',');
  if (keys !== 'descr,fortran_order,shape') {
    throw new DataError('ENPY_HEADER', `malformed .npy header: keys are {${keys}}, expected {descr, fortran_order, shape}`, file);
  }
  const { descr, fortran_order: fortran, shape } = header as Record<string, PyValue>;
  if (typeof fortran !== 'boolean') throw new DataError('ENPY_HEADER', `malformed .npy header: fortran_order is ${clipText(JSON.stringify(fortran) ?? String(fortran))}, not True/False`, file);
  if (Array.isArray(shape) && shape.length > MAX_NDIM) {
    throw new DataError('ESHAPE', `shape has ${shape.length} dimensions, more than ${MAX_NDIM}: the header is corrupt`, file);
  }
  if (!Array.isArray(shape) || !shape.every((d) => typeof d === 'number' && d >= 0)) {
    throw new DataError('ENPY_HEADER', `malformed .npy header: shape ${clipText(JSON.stringify(shape) ?? String(shape))} is not a tuple of non-negative integers`, file);
  }
  if (shape.some((d) => !Number.isSafeInteger(d))) {
    throw new DataError('ESHAPE', 'shape has a dimension too large to be real: the header is corrupt', file);
  }
  if (typeof descr !== 'string') {
    throw new DataError('EDTYPE', `unsupported dtype ${clipText(JSON.stringify(descr) ?? String(descr))}: structured (record) arrays are not image or label arrays`, file);
  }
  const order = descr[0];
  const shown = clipText(descr, 60);
  const code = '<>|='.includes(order) ? descr.slice(1) : descr;
  if (code[0] === 'O') {
    throw new DataError('EPICKLE', `dtype '${shown}' is an object array (pickled Python objects); refusing to unpickle. Re-save it with a numeric dtype, e.g. np.save(path, np.asarray(a, dtype=np.uint8))`, file);
  }
  // own keys only: '<__proto__' or '<constructor' must not find Object.prototype's
  const dt = Object.hasOwn(DTYPES, code) ? DTYPES[code] : undefined;
  if (!dt) {
    throw new DataError('EDTYPE', `unsupported dtype '${shown}' (supported: bool, u1, i1, u2, i2, u4, i4, u8, i8, f2, f4, f8, either byte order)`, file);
  }
  if (dt.size > 1 && order !== '<' && order !== '>') {
    throw new DataError('EDTYPE', `dtype '${shown}' does not state a byte order ('<' or '>')`, file);
  }
  const count = checkDataLength(file, shape as number[], dt.size, size - dataStart, maxBytes);
  return { dtype: dt.name, shape: shape as number[], itemSize: dt.size, bigEndian: order === '>', fortran, dataStart, count, dt };
}

function parseNpy(bytes: Uint8Array, file: string, maxBytes: number): NdArray {
  const h = parseNpyHeader(bytes, bytes.length, file, maxBytes);
  let data = decodeValues(bytes, h.dataStart, h.count, h.dt, h.bigEndian);
  if (h.fortran) data = fortranToC(data, h.shape);
  return { dtype: h.dtype, shape: h.shape, data };
}

// ---------------------------------------------------------------------------------------------
// .npz

function parseNpz(bytes: Uint8Array, file: string, opts: Required<LoadOptions>): NdArray {
  const want = opts.arrayName.endsWith('.npy') ? opts.arrayName : `${opts.arrayName}.npy`;
  const names: string[] = [];
  const seen = new Set<string>();
  let tooBig: { name: string; size: number } | undefined;
  let entries: Record<string, Uint8Array>;
  try {
    // The filter sees each entry's declared size before anything is inflated, so a zip bomb is
    // refused without allocating its output; only the one wanted entry is inflated at all.
    entries = unzipSync(bytes, {
      filter: (f) => {
        // A corrupt directory can claim billions of entries; no real .npz has this many.
        if (names.push(f.name) > 65536) throw new Error('more than 65536 entries');
        // One member per name: a directory listing the wanted member thousands of times would
        // inflate it once per listing (a 322 KB file ran for minutes). NumPy never writes two.
        if (seen.has(f.name)) throw new Error(`the archive lists the member ${JSON.stringify(clipText(f.name, 80))} more than once`);
        seen.add(f.name);
        if (f.name !== want) return false;
        if (f.originalSize > opts.maxBytes) { tooBig = { name: f.name, size: f.originalSize }; return false; }
        // Deflate cannot expand more than ~1032:1, so a larger claim is corruption, and
        // believing it would allocate the claimed size up front.
        if (f.size > bytes.length || (f.compression === 8 && f.originalSize > f.size * 1032 + 1024)) {
          throw new Error(`entry ${f.name} claims ${f.originalSize} bytes from ${f.size} compressed bytes`);
        }
        return true;
      },
    });
  } catch (e) {
    throw new DataError('EZIP', `not a readable .npz/zip archive (${(e as Error).message})`, file);
  }
  if (tooBig) {
    throw new DataError('ETOO_LARGE', `archive member ${tooBig.name} declares ${tooBig.size} uncompressed bytes, over the ${opts.maxBytes}-byte limit; refusing to inflate it`, file);
  }
  const member = entries[want];
  if (!member) {
    const inside = names.length ? clipText(names.map((n) => n.replace(/\.npy$/, '')).join(', '), 400) : 'nothing';
    throw new DataError('ENO_ARRAY', `no array '${want.replace(/\.npy$/, '')}' in the archive; it contains: ${inside}`, file);
  }
  return parseNpy(member, `${file}:${want}`, opts.maxBytes);
}

// ---------------------------------------------------------------------------------------------
// IDX (MNIST): 2 zero bytes, a type byte, a dimension count, big-endian uint32 dims, big-endian data

const IDX_TYPES: Record<number, DType> = {
  0x08: DTYPES.u1, 0x09: DTYPES.i1, 0x0b: DTYPES.i2, 0x0c: DTYPES.i4, 0x0d: DTYPES.f4, 0x0e: DTYPES.f8,
};

/** Parse and check an IDX header (`bytes`: the file's start, at least 1024 bytes when it has them; `size`: its length). */
export function parseIdxHeader(bytes: Uint8Array, size: number, file: string, maxBytes: number): ArrayLayout {
  if (size < 4) throw new DataError('ETRUNCATED', `truncated IDX file: only ${size} bytes`, file);
  const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const magic = dv.getUint32(0, false);
  const dt = Object.hasOwn(IDX_TYPES, bytes[2]) ? IDX_TYPES[bytes[2]] : undefined;
  const nd = bytes[3];
  if (bytes[0] !== 0 || bytes[1] !== 0 || !dt || nd === 0) {
    throw new DataError('EIDX_MAGIC', `bad IDX magic 0x${magic.toString(16).padStart(8, '0')} (expected 0x00000801 for labels or 0x00000803 for images); not a .npy/.npz file either`, file);
  }
  const dataStart = 4 + 4 * nd;
  if (size < dataStart) {
    throw new DataError('ETRUNCATED', `truncated IDX header: ${nd} dimensions need ${dataStart} bytes, file has ${size}`, file);
  }
  const shape: number[] = [];
  for (let d = 0; d < nd; d++) shape.push(dv.getUint32(4 + 4 * d, false));
  const count = checkDataLength(file, shape, dt.size, size - dataStart, maxBytes);
  return { dtype: dt.name, shape, itemSize: dt.size, bigEndian: true, fortran: false, dataStart, count, dt };
}

function parseIdx(bytes: Uint8Array, file: string, maxBytes: number): NdArray {
  const h = parseIdxHeader(bytes, bytes.length, file, maxBytes);
  return { dtype: h.dtype, shape: h.shape, data: decodeValues(bytes, h.dataStart, h.count, h.dt, true) };
}

// ---------------------------------------------------------------------------------------------
// Format detection and file reading

function hexPrefix(bytes: Uint8Array): string {
  return Array.from(bytes.subarray(0, 8), (b) => b.toString(16).padStart(2, '0')).join(' ');
}

/** Decode an in-memory file; `file` is only used in error messages. */
export function parseArray(bytes: Uint8Array, file: string, options: LoadOptions = {}): NdArray {
  return parseDetected(bytes, file, checkedOptions(options), true);
}

export type FileFormat = 'gzip' | 'npy' | 'npz' | 'idx';

/** The format a file's first bytes announce (`head`: at least 4 bytes when the file has them), or the DataError parseArray gives. */
export function detectFormat(head: Uint8Array, size: number, file: string, gzipAllowed = true): FileFormat {
  if (size === 0) throw new DataError('EFORMAT', 'file is empty', file);
  const [b0, b1, b2, b3] = head;
  if (b0 === 0x1f && b1 === 0x8b && gzipAllowed) return 'gzip';
  if (b0 === 0x93 && b1 === 0x4e) return 'npy';
  if (b0 === 0x50 && b1 === 0x4b && ((b2 === 3 && b3 === 4) || (b2 === 5 && b3 === 6))) return 'npz';
  if (b0 === 0 && b1 === 0) return 'idx';
  throw new DataError('EFORMAT', `not a .npy/.npz/IDX file (nor gzipped IDX); it starts with bytes ${hexPrefix(head)}`, file);
}

/** The options parseArray works with: maxBytes checked (EOPTION) and capped at what a Buffer can hold. */
export function checkedOptions(options: LoadOptions): Required<LoadOptions> {
  const maxBytes = options.maxBytes ?? DEFAULT_MAX_BYTES;
  if (!(Number.isSafeInteger(maxBytes) && maxBytes > 0)) throw new DataError('EOPTION', `maxBytes must be a positive integer, got ${maxBytes}`);
  // zlib refuses an output limit above what a Buffer can hold.
  return { arrayName: options.arrayName ?? 'arr_0', maxBytes: Math.min(maxBytes, bufferConstants.MAX_LENGTH) };
}

function parseDetected(bytes: Uint8Array, file: string, opts: Required<LoadOptions>, gzipAllowed: boolean): NdArray {
  const format = detectFormat(bytes, bytes.length, file, gzipAllowed);
  if (format === 'gzip') {
    let inner: Buffer;
    try {
      inner = gunzipSync(bytes, { maxOutputLength: opts.maxBytes });
    } catch (e) {
      const err = e as NodeJS.ErrnoException;
      if (err.code === 'ERR_BUFFER_TOO_LARGE') {
        throw new DataError('ETOO_LARGE', `gzip data inflates beyond the ${opts.maxBytes}-byte limit`, file);
      }
      throw new DataError('EGZIP', `corrupt or truncated gzip data (${err.message})`, file);
    }
    return parseDetected(inner, `${file} (gunzipped)`, opts, false);
  }
  if (format === 'npy') return parseNpy(bytes, file, opts.maxBytes);
  if (format === 'npz') return parseNpz(bytes, file, opts);
  return parseIdx(bytes, file, opts.maxBytes);
}

/** Read and decode a .npy, .npz, or (gzipped) IDX file. */
export async function readArray(path: string, options: LoadOptions = {}): Promise<NdArray> {
  const bytes = await fileOp(path, async () => {
    await statDataFile(path, options);
    return fsp.readFile(path);
  });
  return parseArray(bytes, path, options);
}

/** `op` on the file `path`, its failures as DataErrors naming the file (ENOENT, EIO, …). */
export async function fileOp<T>(path: string, op: () => Promise<T>): Promise<T> {
  try {
    return await op();
  } catch (e) {
    if (e instanceof DataError) throw e;
    const err = e as NodeJS.ErrnoException;
    if (err.code === 'ENOENT') throw new DataError('ENOENT', 'no such file', path);
    throw new DataError(err.code ?? 'EIO', `cannot read file (${err.message})`, path);
  }
}

/** The file's size, after readArray's checks: not a directory, not over `maxBytes`. Call inside fileOp. */
export async function statDataFile(path: string, options: LoadOptions): Promise<number> {
  const maxBytes = options.maxBytes ?? DEFAULT_MAX_BYTES;
  const st = await fsp.stat(path);
  if (st.isDirectory()) throw new DataError('EISDIR', 'is a directory, not a data file', path);
  if (st.size > maxBytes) throw new DataError('ETOO_LARGE', `file is ${st.size} bytes, over the ${maxBytes}-byte limit`, path);
  return st.size;
}

// ---------------------------------------------------------------------------------------------
// Images and labels

function describe(v: number | bigint): string {
  return typeof v === 'bigint' ? v.toString() : Object.is(v, -0) ? '-0' : String(v);
}

/** x rounded to float16 (round to nearest, ties to even), for 0 ≤ x ≤ 1. */
function toHalf(x: number): number {
  if (x === 0) return 0;
  let e = Math.floor(Math.log2(x));
  if (2 ** e > x) e--;
  else if (2 ** (e + 1) <= x) e++;
  const ulp = 2 ** (Math.max(e, -14) - 10);
  const r = x / ulp;
  const f = Math.floor(r);
  const n = r - f > 0.5 || (r - f === 0.5 && f % 2 === 1) ? f + 1 : f;
  return n * ulp;
}

const ROUND: Record<string, (x: number) => number> = { float64: (x) => x, float32: Math.fround, float16: toHalf };
const scaledCache = new Map<string, Map<number, number>>();

/**
 * The values k/255 (k = 0..255) as a file of this float dtype holds them, each mapped to k: k/255
 * and k·(1/255) as NumPy computes them (`x / 255`, `x * (1/255)`; in float32 arithmetic too, for a
 * float32 or float16 file), rounded to the dtype. Every one maps back to its k without loss.
 */
function scaledValues(dtype: string): Map<number, number> | undefined {
  const round = ROUND[dtype];
  if (!round) return undefined;
  let m = scaledCache.get(dtype);
  if (!m) {
    m = new Map();
    const r32 = Math.fround(1 / 255);
    for (let k = 255; k >= 0; k--) {
      const forms = [k / 255, k * (1 / 255)];
      if (dtype !== 'float64') forms.push(Math.fround(k * r32)); // computed in float32
      for (const v of forms) m.set(round(v), k);
    }
    scaledCache.set(dtype, m);
  }
  return m;
}

/**
 * Interpret a decoded array as N images of H×W 8-bit pixels. Accepted shapes: N×(H·W) with a
 * square H·W (784 → 28×28), N×H×W, and N×H×W×1 (a channel axis). Values of any dtype must be
 * integers in 0..255 — rounding silently would hide a wrongly normalised file — or, for float
 * data, every one exactly k/255 for an integer k (images divided by 255 before saving): those are
 * converted back to k without loss. Float data holding only 0 and 1 are read as the integers 0
 * and 1, as before (they are integers in 0..255): multiply them by 255 if they mean black and white.
 */
export function toImages(arr: NdArray, file: string): { images: Uint8Array; n: number; rows: number; cols: number } {
  const { n, rows, cols } = imageShape(arr.shape, file);
  const data = arr.data;
  if (data instanceof Uint8Array) return { images: data, n, rows, cols }; // uint8/bool: no copy
  return { images: pixelsOf(arr, rows * cols, file), n, rows, cols };
}

/** The images a shape describes (toImages' rules), or the DataError toImages gives. */
export function imageShape(s: number[], file: string): { n: number; rows: number; cols: number } {
  let rows: number;
  let cols: number;
  if (s.length === 2) {
    const side = Math.round(Math.sqrt(s[1]));
    if (side * side !== s[1]) {
      throw new DataError('ESHAPE', `images of shape ${fmtShape(s)}: ${s[1]} features per row is not a square image; reshape to N×H×W`, file);
    }
    rows = cols = side;
  } else if (s.length === 3 || (s.length === 4 && s[3] === 1)) {
    rows = s[1];
    cols = s[2];
  } else {
    throw new DataError('ESHAPE', `images must be N×features, N×H×W or N×H×W×1; got shape ${fmtShape(s)}${s.length === 1 ? ' (a label vector?)' : ''}`, file);
  }
  const n = s[0];
  if (n === 0 || rows * cols === 0) throw new DataError('ESHAPE', `no image data: shape ${fmtShape(s)}`, file);
  return { n, rows, cols };
}

/** Any dtype's pixel values as u8, checked (toImages' rules); `f` pixels per image, for messages. */
function pixelsOf(arr: NdArray, f: number, file: string): Uint8Array {
  const data = arr.data;
  const out = new Uint8Array(data.length);
  const where = (i: number) => `at flat index ${i} (image ${Math.floor(i / f)}, pixel ${i % f})`;
  for (let i = 0; i < data.length; i++) {
    const v = data[i];
    const ok = typeof v === 'bigint' ? v >= 0n && v <= 255n : Number.isInteger(v) && v >= 0 && v <= 255;
    if (ok) {
      out[i] = Number(v);
      continue;
    }
    // Not integers: float images scaled to [0, 1], every value k/255?
    const scaled = scaledValues(arr.dtype);
    const unit = scaled && (data as Float32Array | Float64Array).every((x) => x >= 0 && x <= 1);
    if (!unit) {
      throw new DataError('EPIXEL', `pixel value ${describe(v)} ${where(i)} is not an integer in 0..255 (dtype ${arr.dtype})${scaled ? ', nor are the values scaled to [0, 1]' : ''}: save the images as integers 0..255 (uint8)`, file);
    }
    for (let j = 0; j < data.length; j++) {
      const k = scaled.get(data[j] as number);
      if (k === undefined) {
        throw new DataError('EPIXEL', `values lie in [0, 1] but ${describe(data[j])} ${where(j)} is not a multiple of 1/255 (dtype ${arr.dtype}), so it is no 8-bit pixel: multiply by 255 and round, or save uint8`, file);
      }
      out[j] = k;
    }
    break;
  }
  return out;
}

/** Interpret a decoded array as N class labels: 1-D or N×1, non-negative integer values. */
export function toLabels(arr: NdArray, file: string): { labels: Int32Array; n: number } {
  const s = arr.shape;
  if (!(s.length === 1 || (s.length === 2 && s[1] === 1))) {
    throw new DataError('ESHAPE', `labels must be 1-D or N×1; got shape ${fmtShape(s)}`, file);
  }
  const n = s[0];
  if (n === 0) throw new DataError('ESHAPE', 'contains no labels', file);
  const data = arr.data;
  const out = data instanceof Int32Array ? data : new Int32Array(n);
  for (let i = 0; i < n; i++) {
    const v = data[i];
    const ok = typeof v === 'bigint' ? v >= 0n && v <= 0x7fffffffn : Number.isInteger(v) && v >= 0 && v <= 0x7fffffff;
    if (!ok) {
      throw new DataError('ELABEL', `label ${describe(v)} at index ${i} is not a non-negative integer class index (dtype ${arr.dtype})`, file);
    }
    out[i] = Number(v);
  }
  return { labels: out, n };
}

/** Load images (N×784, N×28×28, N×H×W, ...) as one Uint8Array of N·rows·cols pixels. */
export async function loadImages(path: string, options: LoadOptions = {}): Promise<{ images: Uint8Array; n: number; rows: number; cols: number }> {
  return toImages(await readArray(path, options), path);
}

/** Load class labels (any integer dtype, or floats holding exact integers). */
export async function loadLabels(path: string, options: LoadOptions = {}): Promise<{ labels: Int32Array; n: number }> {
  return toLabels(await readArray(path, options), path);
}

/**
 * Check labels are integer class indices (below `numClasses` when given) and return the number
 * of classes: `numClasses` when given — a split or subset may lack the top classes, and the model
 * must still have one output per class — otherwise the inferred max+1.
 */
export function validateLabels(labels: ArrayLike<number>, numClasses?: number): number {
  if (numClasses !== undefined && !(Number.isSafeInteger(numClasses) && numClasses > 0)) {
    throw new DataError('ECLASSES', `number of classes must be a positive integer, got ${numClasses}`);
  }
  if (labels.length === 0) throw new DataError('ELABEL', 'no labels');
  let max = -1;
  for (let i = 0; i < labels.length; i++) {
    const v = labels[i];
    if (!Number.isInteger(v) || v < 0) throw new DataError('ELABEL', `label ${describe(v)} at index ${i} is not a non-negative integer`);
    if (numClasses !== undefined && v >= numClasses) {
      throw new DataError('ELABEL', `label ${v} at index ${i} is out of range for ${numClasses} classes (0..${numClasses - 1})`);
    }
    if (v > max) max = v;
  }
  return numClasses ?? max + 1;
}
