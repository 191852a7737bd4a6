// Images straight from a file into native memory, never whole in JavaScript: the header is parsed
// and checked first (the very checks and messages of readers.ts), then the pixels flow through one
// reused chunk buffer — into a native PixelBuffer that the Dataset adopts without a copy
// (`loadDataset`), or row by row into the parts of a split (inputs.ts).
//
// Streamed: uint8 and bool arrays in .npy (C order) and IDX files, plain or gzipped (a gzipped file
// is inflated twice: once to check it whole, as readers.ts does before parsing, and once to read
// it). Everything else — .npz, other dtypes (their checks and the k/255 rule look at every value
// before converting), Fortran order — is decoded whole by readers.ts as before, then handed on in
// chunks.
import { createReadStream, promises as fsp } from 'node:fs'
import { pipeline } from 'node:stream/promises'
import { createGunzip } from 'node:zlib'
import { Dataset, PixelBuffer } from '../engine/mlp'
import {
  DataError,
  MAX_NPY_HEADER,
  checkedOptions,
  detectFormat,
  fileOp,
  imageShape,
  loadImages,
  loadLabels,
  parseIdxHeader,
  parseNpyHeader,
  statDataFile,
  type ArrayLayout,
  type LoadOptions,
} from './readers'

/** Bytes read from the file at a time: the only JavaScript memory the pixels pass through. */
export const CHUNK_BYTES = 4 << 20
/** Enough of a file's start for any header this reader accepts (.npy: 12 + 64 KiB; IDX: 1 KiB). */
const HEAD_BYTES = 12 + MAX_NPY_HEADER

/** An image file whose header has been read and checked; `read` passes on its pixels. */
export interface ImageFile {
  n: number
  rows: number
  cols: number
  /** True when the pixels come from the file chunk by chunk (no whole copy in JavaScript memory). */
  streamed: boolean
  /**
   * Calls `sink` with the n·rows·cols pixels in order, in chunks of at most CHUNK_BYTES. A chunk
   * is a view of a reused buffer, valid only during the call: copy what you keep.
   */
  read(sink: (chunk: Uint8Array) => void): Promise<void>
}

/**
 * Opens an image file (.npy, .npz, IDX, gzipped IDX): checks it as `loadImages` does, with the same
 * DataErrors, but reads only the header of a streamable file (uint8/bool, C order, uncompressed).
 */
export async function openImages(path: string, options: LoadOptions = {}): Promise<ImageFile> {
  const layout = await fileOp(path, async () => {
    const size = await statDataFile(path, options)
    const opts = checkedOptions(options)
    let head = await readHead(path, Math.min(size, HEAD_BYTES))
    let format = detectFormat(head, size, path)
    let gz: { size: number } | null = null
    let name = path
    if (format === 'gzip') {
      // checked whole first, as gunzipSync does in readers.ts: a corrupt stream is EGZIP whatever its header says
      const g = await inflate(path, opts.maxBytes, HEAD_BYTES, () => undefined)
      ;({ head } = g)
      gz = { size: g.size }
      name = `${path} (gunzipped)`
      format = detectFormat(head, g.size, name, false)
    }
    const total = gz ? gz.size : size
    const h = format === 'npy' ? parseNpyHeader(head, total, name, opts.maxBytes) : format === 'idx' ? parseIdxHeader(head, total, name, opts.maxBytes) : null
    return h && h.itemSize === 1 && !(h.fortran && h.shape.filter((d) => d !== 1).length > 1) ? { h, size, gz } : null
  })
  if (!layout) return whole(path, options)
  const { h, size, gz } = layout
  const { n, rows, cols } = imageShape(h.shape, path) // (toImages names the file itself)
  const read = gz ? (sink: Sink) => streamGzipData(path, h, gz.size, sink) : (sink: Sink) => streamData(path, h, size, sink)
  return { n, rows, cols, streamed: true, read }
}

type Sink = (chunk: Uint8Array) => void

/**
 * Inflates the gzipped file, passing each output chunk to `onChunk`; returns the first `keep`
 * bytes of the output and its size. The errors are readers.ts's for gunzipSync: EGZIP with zlib's
 * message, ETOO_LARGE past `maxBytes`.
 */
async function inflate(path: string, maxBytes: number, keep: number, onChunk: (c: Buffer) => void): Promise<{ head: Uint8Array; size: number }> {
  const head = new Uint8Array(keep)
  let size = 0
  try {
    await pipeline(createReadStream(path, { highWaterMark: 1 << 20 }), createGunzip({ chunkSize: 1 << 20 }), async (out: AsyncIterable<Buffer>) => {
      for await (const c of out) {
        if (size < keep) head.set(c.subarray(0, keep - size), size)
        size += c.length
        if (size > maxBytes) throw new DataError('ETOO_LARGE', `gzip data inflates beyond the ${maxBytes}-byte limit`, path)
        onChunk(c)
      }
    })
  } catch (e) {
    if (e instanceof DataError) throw e
    const err = e as NodeJS.ErrnoException
    // zlib's errors carry a Z_* code (or none); the file's own (ENOENT, EIO, …) are fileOp's
    if (err.code && !err.code.startsWith('Z_') && err.code !== 'ERR_BUFFER_TOO_LARGE') throw e
    throw new DataError('EGZIP', `corrupt or truncated gzip data (${err.message})`, path)
  }
  return { head: head.subarray(0, Math.min(size, keep)), size }
}

/** The data region of a checked gzipped file, inflated again chunk by chunk. */
async function streamGzipData(path: string, h: ArrayLayout, size: number, sink: Sink): Promise<void> {
  const end = h.dataStart + h.count
  let at = 0
  const { size: now } = await fileOp(path, () =>
    inflate(path, Number.MAX_SAFE_INTEGER, 0, (c) => {
      const from = Math.max(h.dataStart - at, 0)
      const to = Math.min(end - at, c.length)
      at += c.length
      if (to <= from) return
      const chunk = c.subarray(from, to) // zlib's own output buffer: ours to change
      if (h.dtype === 'bool') for (let i = 0; i < chunk.length; i++) if (chunk[i] > 1) chunk[i] = 1
      sink(chunk)
    }),
  )
  if (now !== size) throw new DataError('ECHANGED', `the file changed while being read (it inflated to ${size} bytes when checked, ${now} now)`, path)
}

async function readHead(path: string, bytes: number): Promise<Uint8Array> {
  const fh = await fsp.open(path, 'r')
  try {
    const head = new Uint8Array(bytes)
    let got = 0
    while (got < bytes) {
      const { bytesRead } = await fh.read(head, got, bytes - got, got)
      if (bytesRead === 0) break
      got += bytesRead
    }
    return head.subarray(0, got)
  } finally {
    await fh.close()
  }
}

/** The data region of a checked header, chunk by chunk (bool normalised to 0/1 as decodeValues does). */
async function streamData(path: string, h: ArrayLayout, size: number, sink: Sink): Promise<void> {
  const total = h.count
  const bool = h.dtype === 'bool'
  await fileOp(path, async () => {
    const fh = await fsp.open(path, 'r')
    try {
      // the file must still be the one checked: a size change between the checks and the reads
      // would otherwise turn into a short or misaligned data set
      const now = (await fh.stat()).size
      if (now !== size) throw new DataError('ECHANGED', `the file changed while being read (${size} bytes when checked, ${now} now)`, path)
      const buf = new Uint8Array(Math.min(CHUNK_BYTES, Math.max(total, 1)))
      for (let done = 0; done < total; ) {
        const want = Math.min(buf.length, total - done)
        const { bytesRead } = await fh.read(buf, 0, want, h.dataStart + done)
        if (bytesRead === 0) throw new DataError('ECHANGED', `the file changed while being read: it ended after ${h.dataStart + done} of ${size} bytes`, path)
        const chunk = buf.subarray(0, bytesRead)
        if (bool) for (let i = 0; i < chunk.length; i++) if (chunk[i] > 1) chunk[i] = 1
        sink(chunk)
        done += bytesRead
      }
    } finally {
      await fh.close()
    }
  })
}

/** A file that is not streamed: decoded whole (readers.ts), then handed on in chunks. */
async function whole(path: string, options: LoadOptions): Promise<ImageFile> {
  let { images, n, rows, cols } = await loadImages(path, options)
  return {
    n,
    rows,
    cols,
    streamed: false,
    read: async (sink) => {
      if (!images) throw new Error(`${path}: read() may be called once`)
      for (let at = 0; at < images.length; at += CHUNK_BYTES) sink(images.subarray(at, at + CHUNK_BYTES))
      images = undefined as unknown as Uint8Array // let the decoded copy go
    },
  }
}

export interface LoadDatasetOptions extends LoadOptions {
  /** Called once the images' header is checked, before the pixels are read: `streamed` says whether they bypass JavaScript memory. */
  onOpen?: (info: { n: number; rows: number; cols: number; streamed: boolean }) => void
}

/**
 * A `Dataset` built straight from files: the images' pixels go from the file into native memory in
 * chunks (for uint8/bool .npy and IDX; see the top of this file), so the process never holds them
 * twice. `labels` (optional: a prediction-only data set) are read whole — they are 4 bytes a
 * sample. Errors are the DataErrors of loadImages/loadLabels, and a count mismatch is ESHAPE;
 * all are raised before the pixels are read.
 */
export async function loadDataset(images: string, labels?: string | null, options: LoadDatasetOptions = {}): Promise<Dataset> {
  const img = await openImages(images, options)
  const lab = labels == null ? null : await loadLabels(labels, options)
  if (lab && img.n !== lab.n) throw new DataError('ESHAPE', `holds ${img.n} images but ${labels} holds ${lab.n} labels`, images)
  options.onOpen?.({ n: img.n, rows: img.rows, cols: img.cols, streamed: img.streamed })
  return datasetOf(img, lab?.labels ?? null)
}

/** The opened file's pixels as a native Dataset (through a PixelBuffer: no whole copy in JavaScript). */
export async function datasetOf(img: ImageFile, labels: Int32Array | null): Promise<Dataset> {
  const features = img.rows * img.cols
  const pixels = new PixelBuffer(img.n * features)
  await img.read((chunk) => pixels.write(chunk))
  return new Dataset(pixels, labels, features)
}

/**
 * The images' rows scattered into parts as they stream past: `parts[p]` receives, in order, the
 * rows `idx[p]` lists (ascending, as stratifiedSplit returns them). The same result as `gather`
 * on the whole array, without the whole array.
 */
export async function readParts(img: ImageFile, idx: readonly Int32Array[]): Promise<Uint8Array[]> {
  const f = img.rows * img.cols
  const part = new Uint8Array(img.n).fill(255) // 255: the row belongs to no part
  const pos = new Int32Array(img.n)
  idx.forEach((rows, p) => rows.forEach((r, k) => ((part[r] = p), (pos[r] = k))))
  const out = idx.map((rows) => new Uint8Array(rows.length * f))
  let row = 0
  let within = 0 // bytes of `row` seen so far
  await img.read((chunk) => {
    for (let at = 0; at < chunk.length; ) {
      const take = Math.min(f - within, chunk.length - at)
      const p = part[row]
      if (p !== 255) out[p].set(chunk.subarray(at, at + take), pos[row] * f + within)
      at += take
      within += take
      if (within === f) ((row += 1), (within = 0))
    }
  })
  return out
}
