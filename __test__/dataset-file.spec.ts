// A Dataset built straight from the file (src/data/dataset-file.ts, the native pixel buffer):
// the same data as the whole-array path, the same errors, and no whole JavaScript copy.
import test from 'ava'
import fc from 'fast-check'
import { spawnSync } from 'node:child_process'
import * as fs from 'node:fs'
import * as os from 'node:os'
import * as path from 'node:path'
import { gzipSync } from 'node:zlib'
import { zipSync } from 'fflate'

import { Dataset, MLP, PixelBuffer } from '../src/engine/mlp'
import { native } from '../src/engine/native'
import { CHUNK_BYTES, loadDataset, openImages } from '../src/data/dataset-file'
import { loadInputs } from '../src/data/inputs'
import { DataError, loadImages } from '../src/data/readers'
import { npy } from './helpers/npy'

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'kana-dsfile-'))
test.after.always(() => fs.rmSync(tmp, { recursive: true, force: true }))
let fileNo = 0
function tmpFile(bytes: Uint8Array, name = 'a.bin'): string {
  const p = path.join(tmp, `${fileNo++}-${name}`)
  fs.writeFileSync(p, bytes)
  return p
}

/** IDX: zero, zero, type, dims, big-endian u32 dims, data. */
function idx(type: number, shape: number[], body: Uint8Array): Uint8Array {
  const head = Buffer.alloc(4 + 4 * shape.length)
  head[2] = type
  head[3] = shape.length
  shape.forEach((d, i) => head.writeUInt32BE(d, 4 + 4 * i))
  return Buffer.concat([head, body])
}

function pixels(n: number, f: number, seed = 1): Uint8Array {
  let x = seed
  return Uint8Array.from({ length: n * f }, () => ((x = (x * 1103515245 + 12345) >>> 0), x >>> 24))
}

/** What a path gives: the pixels (collected from `read`) or the error (class, code, message). */
async function outcome(load: () => Promise<{ n: number; rows: number; cols: number; images: Uint8Array }>): Promise<unknown> {
  try {
    const r = await load()
    return { n: r.n, rows: r.rows, cols: r.cols, images: Buffer.from(r.images).toString('base64') }
  } catch (e) {
    return { error: (e as Error).constructor.name, code: (e as DataError).code, message: (e as Error).message }
  }
}

async function viaStream(file: string): Promise<{ n: number; rows: number; cols: number; images: Uint8Array; chunks: number[] }> {
  const img = await openImages(file)
  const out = new Uint8Array(img.n * img.rows * img.cols)
  const chunks: number[] = []
  let at = 0
  await img.read((c) => {
    chunks.push(c.length)
    out.set(c, at)
    at += c.length
  })
  if (at !== out.length) throw new Error(`read passed ${at} of ${out.length} bytes`)
  return { n: img.n, rows: img.rows, cols: img.cols, images: out, chunks }
}

/** Bit-exact fingerprint of a native data set: a fixed model's probabilities and evaluation. */
async function fingerprint(ds: Dataset): Promise<string> {
  const m = new MLP({ layers: [ds.features, 3], seed: 7, threads: 1 })
  try {
    const p = await m.predictProba(ds)
    const e = ds.labeled ? await m.evaluate(ds) : null
    return Buffer.from(p.buffer).toString('base64') + JSON.stringify(e && { loss: e.loss, confusion: [...e.confusion] })
  } finally {
    m.free()
  }
}

test('the streamed formats read the same pixels as loadImages, and the others fall back to it', async (t) => {
  const f = 16
  const body = pixels(5, f)
  const bool = Uint8Array.from(body, (v) => v % 3) // 0, 1, 2: NumPy reads 2 as True
  const cases: [string, Uint8Array, boolean | null][] = [
    ['npy u1 N×16', npy('|u1', [5, f], body), true],
    ['npy u1 N×4×4×1', npy('|u1', [5, 4, 4, 1], body), true],
    ['npy bool', npy('|b1', [5, 4, 4], bool), true],
    ['IDX u8', idx(0x08, [5, 4, 4], body), true],
    ['IDX gzipped', gzipSync(idx(0x08, [5, 4, 4], body)), true],
    ['npy gzipped, bool', gzipSync(npy('|b1', [5, f], bool)), true],
    ['gzipped npz', gzipSync(zipSync({ 'arr_0.npy': npy('|u1', [5, f], body) })), false],
    ['gzipped twice (refused by both)', gzipSync(gzipSync(idx(0x08, [5, 4, 4], body))), null],
    ['npz', zipSync({ 'arr_0.npy': npy('|u1', [5, f], body) }), false],
    ['npy float32 k/255', npy('<f4', [5, f], Float32Array.from(body, (v) => v / 255)), false],
    ['npy int32', npy('<i4', [5, f], Int32Array.from(body)), false],
  ]
  for (const [name, bytes, streamed] of cases) {
    const file = tmpFile(bytes, 'x')
    t.is(await openImages(file).then((f) => f.streamed, () => null), streamed, name)
    t.deepEqual(await outcome(() => viaStream(file)), await outcome(() => loadImages(file)), name)
  }
})

test('large files pass in chunks of at most CHUNK_BYTES, in order (plain and gzipped)', async (t) => {
  const n = Math.ceil((2.5 * CHUNK_BYTES) / 784)
  const body = pixels(n, 784, 3)
  for (const bytes of [npy('|u1', [n, 784], body), gzipSync(idx(0x08, [n, 28, 28], body))]) {
    const r = await viaStream(tmpFile(bytes, 'big'))
    t.true(r.chunks.length >= 3 && r.chunks.every((c) => c <= CHUNK_BYTES), JSON.stringify(r.chunks))
    t.true(Buffer.from(r.images).equals(Buffer.from(body)))
  }
})

test('loadDataset holds the same data as new Dataset(loadImages(...)), labels included', async (t) => {
  const n = 300
  const body = pixels(n, 784, 5)
  const labels = Int32Array.from({ length: n }, (_, i) => (i * 7) % 3)
  for (const [name, bytes] of [['npy', npy('|u1', [n, 28, 28], body)], ['gz', gzipSync(idx(0x08, [n, 28, 28], body))]] as const) {
    const imgs = tmpFile(bytes, `${name}-x`)
    const labs = tmpFile(npy('<i4', [n], labels), 'y.npy')
    const fromFile = await loadDataset(imgs, labs)
    const old = await loadImages(imgs)
    t.is(fromFile.length, n)
    t.is(fromFile.features, 784)
    t.is(await fingerprint(fromFile), await fingerprint(new Dataset(old.images, labels, 784)), name)
    const unlabeled = await loadDataset(imgs)
    t.false(unlabeled.labeled)
    t.is(await fingerprint(unlabeled), await fingerprint(new Dataset(old.images, null, 784)))
  }
})

test('loadDataset: a count mismatch and bad labels are DataErrors raised before the pixels are read', async (t) => {
  const imgs = tmpFile(npy('|u1', [4, 4], pixels(4, 4)), 'x.npy')
  let opened = false
  const e = await t.throwsAsync(loadDataset(imgs, tmpFile(npy('<i4', [3], Int32Array.from([0, 1, 2])), 'y.npy'), { onOpen: () => (opened = true) }), { instanceOf: DataError })
  t.is(e!.code, 'ESHAPE')
  t.regex(e!.message, /holds 4 images but .*y\.npy holds 3 labels/)
  t.false(opened)
  const bad = await t.throwsAsync(loadDataset(imgs, tmpFile(npy('<f4', [4], Float32Array.from([0, 1, 0.5, 2])), 'y.npy')), { instanceOf: DataError })
  t.is(bad!.code, 'ELABEL')
})

test('loadInputs from a file gives the same split, bit for bit, as from the array in memory', async (t) => {
  const n = 257
  const body = pixels(n, 784, 9)
  const labels = Int32Array.from({ length: n }, (_, i) => (i * 5) % 4)
  const images = tmpFile(npy('|u1', [n, 784], body), 'x.npy')
  const labs = tmpFile(npy('<i4', [n], labels), 'y.npy')
  const a = await loadInputs({ images, labels: labs, seed: 3 })
  const b = await loadInputs({ data: { images: body, labels, features: 784 }, seed: 3 })
  for (const p of ['train', 'validation', 'test'] as const) {
    t.true(Buffer.from(a[p].images).equals(Buffer.from(b[p].images)), p)
    t.deepEqual([...a[p].labels], [...b[p].labels], p)
  }
  t.is(a.train.labels.length + a.validation.labels.length + a.test.labels.length, n)
})

test('property: damaged files give exactly the error (or the data) loadImages gives', async (t) => {
  const bases = [
    npy('|u1', [3, 2, 2], pixels(3, 4)),
    npy('|b1', [2, 9], pixels(2, 9)),
    npy('<i4', [2, 4], Int32Array.from([0, 1, 2, 3, 4, 5, 6, 255])),
    idx(0x08, [3, 2, 2], pixels(3, 4)),
    idx(0x0c, [1, 2, 2], Buffer.from(Int32Array.from([1, 2, 3, 4]).buffer)),
    gzipSync(idx(0x08, [2, 2, 2], pixels(2, 4))),
    gzipSync(npy('|u1', [2, 4], pixels(2, 4))),
  ]
  const mutation = fc.oneof(
    fc.record({ kind: fc.constant('set' as const), pos: fc.nat(), byte: fc.integer({ min: 0, max: 255 }) }),
    fc.record({ kind: fc.constant('cut' as const), pos: fc.nat(), byte: fc.constant(0) }),
    fc.record({ kind: fc.constant('add' as const), pos: fc.nat(), byte: fc.integer({ min: 0, max: 255 }) }),
  )
  let errors = 0
  await fc.assert(
    fc.asyncProperty(fc.nat({ max: bases.length - 1 }), fc.array(mutation, { minLength: 1, maxLength: 4 }), async (which, muts) => {
      let bytes = Buffer.from(bases[which])
      for (const m of muts) {
        const pos = bytes.length ? m.pos % Math.min(bytes.length, 80) : 0 // mostly the header
        if (m.kind === 'set' && bytes.length) bytes[pos] = m.byte
        else if (m.kind === 'cut') bytes = bytes.subarray(0, pos)
        else bytes = Buffer.concat([bytes.subarray(0, pos), Buffer.from([m.byte]), bytes.subarray(pos)])
      }
      const file = tmpFile(bytes, 'mutant')
      const old = await outcome(() => loadImages(file))
      if ((old as { error?: string }).error) errors++
      t.deepEqual(await outcome(() => viaStream(file)), old)
      fs.rmSync(file)
    }),
    { seed: 20261201, numRuns: 400 },
  )
  t.true(errors > 100, `only ${errors} of the mutants were refused: the property tests little`)
})

test('missing file, directory, empty file and size limit: the errors of loadImages', async (t) => {
  const big = tmpFile(npy('|u1', [4, 4], pixels(4, 4)), 'x.npy')
  for (const [file, opts] of [[path.join(tmp, 'nope.npy'), {}], [tmp, {}], [tmpFile(new Uint8Array(0), 'empty'), {}], [big, { maxBytes: 100 }], [big, { maxBytes: -1 }]] as const) {
    const want = await outcome(() => loadImages(file, opts))
    t.truthy((want as { error?: string }).error)
    t.deepEqual(await outcome(async () => { const img = await openImages(file, opts); return { ...img, images: new Uint8Array(0) } }), want)
  }
})

test('a file that shrinks after its header was checked is an error, not a short data set', async (t) => {
  const file = tmpFile(npy('|u1', [64, 16], pixels(64, 16)), 'x.npy')
  const img = await openImages(file)
  fs.truncateSync(file, 200)
  const e = await t.throwsAsync(img.read(() => undefined), { instanceOf: DataError })
  t.is(e!.code, 'ECHANGED')
})

test('the native pixel buffer: copies each chunk in, refuses overflow, partial and second use', async (t) => {
  const body = pixels(6, 4)
  // a chunk in a SharedArrayBuffer, changed after the write: the data set keeps what was written
  const shared = new Uint8Array(new SharedArrayBuffer(body.length))
  shared.set(body)
  const buf = new PixelBuffer(body.length)
  buf.write(shared.subarray(0, 10))
  t.throws(() => new Dataset(buf, null, 4), { instanceOf: RangeError, message: 'images: only 10 of the pixel buffer\'s 24 bytes are written' })
  t.throws(() => buf.write(new Uint8Array(15)), { instanceOf: RangeError, message: 'chunk: 15 bytes do not fit: 10 of the buffer\'s 24 bytes are written' })
  t.throws(() => native.writePixels(buf.handle, new Int8Array(2) as unknown as Uint8Array), { instanceOf: TypeError })
  buf.write(shared.subarray(10))
  t.is(buf.written, 24)
  // a refused data set leaves the buffer to its owner
  t.throws(() => new Dataset(buf, Int32Array.from([0, 1]), 4), { instanceOf: RangeError, message: 'labels has 2 entries but images holds 6 samples' })
  t.throws(() => new Dataset(buf, null, 5), { instanceOf: RangeError })
  const ds = new Dataset(buf, null, 4)
  shared.fill(0)
  t.is(await fingerprint(ds), await fingerprint(new Dataset(body, null, 4)))
  t.throws(() => new Dataset(buf, null, 4), { message: 'images: this pixel buffer was already taken by a data set' })
  t.throws(() => buf.write(new Uint8Array(0)), { message: 'pixels: this buffer was already taken by a data set' })
  t.throws(() => native.writePixels(ds.handle as never, new Uint8Array(1)), { instanceOf: TypeError, message: 'pixels must be a kana-native pixel buffer handle' })
  t.throws(() => native.createDataset(native.createModel([2, 2], 1, 1) as never, null, 2), { instanceOf: TypeError })
  t.throws(() => new PixelBuffer(-1), { instanceOf: RangeError })
  t.throws(() => native.createPixels(2 ** 41), { instanceOf: RangeError })
})

// Memory: the whole point. A child process loads a 96 MB .npy both ways and reports how far its
// peak RSS rose; the streamed load must add about the pixels once, the copying one about twice
// (which shows the measurement can tell them apart).
test('loadDataset adds the pixels to the peak RSS once; loadImages + new Dataset twice', (t) => {
  if (process.platform !== 'linux') return t.pass('VmHWM is Linux-only')
  const n = 122_449 // 96.0 MB of u8 pixels
  const file = path.join(tmp, 'rss.npy')
  const fd = fs.openSync(file, 'w')
  fs.writeSync(fd, npy('|u1', [n, 784], new Uint8Array(0)))
  const block = pixels(4096, 784, 11)
  for (let r = 0; r < n; r += 4096) fs.writeSync(fd, block, 0, Math.min(4096, n - r) * 784)
  fs.closeSync(fd)
  const script = `
    const fs = require('node:fs')
    const hwm = () => Number(/VmHWM:\\s+(\\d+)/.exec(fs.readFileSync('/proc/self/status', 'utf8'))[1]) * 1024
    const { loadDataset } = require('./src/data/dataset-file')
    const { loadImages } = require('./src/data/readers')
    const { Dataset } = require('./src/engine/mlp')
    ;(async () => {
      gc()
      const before = hwm()
      const ds = process.env.KANA_LOAD === 'file' ? await loadDataset(${JSON.stringify(file)}) : new Dataset((await loadImages(${JSON.stringify(file)})).images, null, 784)
      console.log(JSON.stringify({ rise: hwm() - before, length: ds.length }))
    })()`
  const rise: Record<string, number> = {}
  for (const mode of ['file', 'copy']) {
    const r = spawnSync(process.execPath, ['--expose-gc', '--import=tsx', '-e', script], { cwd: path.join(__dirname, '..'), encoding: 'utf8', env: { ...process.env, KANA_LOAD: mode } })
    t.is(r.status, 0, r.stderr)
    const out = JSON.parse(r.stdout.trim().split('\n').at(-1)!)
    t.is(out.length, n)
    rise[mode] = out.rise
  }
  const bytes = n * 784
  t.log(`peak RSS rise for ${(bytes / 1e6).toFixed(1)} MB of pixels: loadDataset ${(rise.file / 1e6).toFixed(1)} MB, loadImages + new Dataset ${(rise.copy / 1e6).toFixed(1)} MB`)
  t.true(rise.file < bytes * 1.1 + 16e6, `loadDataset raised the peak by ${rise.file} bytes for ${bytes} bytes of pixels`)
  t.true(rise.copy > bytes * 1.7, `the copying path raised the peak by only ${rise.copy}: the measurement cannot tell a copy`)
})
