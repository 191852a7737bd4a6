import test, { type ExecutionContext } from 'ava'
import * as fs from 'node:fs'
import * as os from 'node:os'
import * as path from 'node:path'

import { loadClassmap } from '../src/data/classmap'
import { loadImages, loadLabels } from '../src/data/readers'
import { classDistribution, comparisonCurves, confusionHeatmap, lossCurves, sampleGrid, type HistoryRow } from '../src/output/plots'
import { prepareForRaster, rasterize, writeRendered, type Rendered } from '../src/output/render'
import { findCjkFont, FontError } from '../src/output/fonts'

const SHARED = path.resolve(__dirname, '..', '..', 'shared', 'data')
const K49_CLASSMAP = path.join(SHARED, 'k49', 'k49_classmap.csv')
const KMNIST = path.join(SHARED, 'kmnist')
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'kana-plots-'))
test.after.always(() => fs.rmSync(tmp, { recursive: true, force: true }))

/** KANA_PLOTS_PREVIEW=/tmp/plots-preview keeps the PNGs of the main charts there for a look. */
const PREVIEW = process.env.KANA_PLOTS_PREVIEW

const CJK_FONT = findCjkFont()
const NO_FONT = 'no CJK font found: install the Debian package fonts-noto-cjk (or set KANA_PLOTS_FONT)'

// ---------------------------------------------------------------------------------------------
// Helpers

async function k49Names(t: ExecutionContext): Promise<string[] | null> {
  if (!fs.existsSync(K49_CLASSMAP)) {
    t.log(`shared data missing: ${K49_CLASSMAP} (see ../shared/data/README.md); using a built-in list`)
    return null
  }
  return loadClassmap(K49_CLASSMAP)
}

/** The 49 K49 characters, from the shared classmap when present (the tests' real source). */
const K49_FALLBACK = [...'あいうえおかきくけこさしすせそたちつてとなにぬねのはひふへほまみむめもやゆよらりるれろわゐゑをんゝ']

const PNG_SIGNATURE = [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]

function pngSize(png: Uint8Array): { width: number; height: number } {
  const view = new DataView(png.buffer, png.byteOffset, png.byteLength)
  return { width: view.getUint32(16), height: view.getUint32(20) }
}

function svgSize(svg: string): { width: number; height: number } {
  const m = /^<svg\b[^>]*\swidth="(\d+(?:\.\d+)?)"[^>]*\sheight="(\d+(?:\.\d+)?)"/.exec(svg)
  if (!m) throw new Error('no width/height on the <svg> element')
  return { width: Number(m[1]), height: Number(m[2]) }
}

/** Tags balance, every "<" starts a tag, attributes are quoted: a cheap well-formedness check. */
function checkSvgSyntax(t: ExecutionContext, svg: string): void {
  t.true(svg.startsWith('<svg'), 'SVG starts with <svg')
  t.true(svg.trimEnd().endsWith('</svg>'), 'SVG ends with </svg>')
  const tag = /<(\/?)([A-Za-z][\w:.-]*)((?:\s+[\w:.-]+="[^"]*")*)\s*(\/?)>/g
  const stack: string[] = []
  let consumed = 0
  let bad: string | null = null
  for (const m of svg.matchAll(tag)) {
    consumed++
    const [, close, name, , selfClose] = m
    if (selfClose) continue
    if (close) {
      const open = stack.pop()
      if (open !== name) {
        bad = `</${name}> closes <${open}>`
        break
      }
    } else stack.push(name)
  }
  t.is(bad, null)
  t.deepEqual(stack, [], 'all tags closed')
  t.is(consumed, (svg.match(/</g) ?? []).length, 'every "<" begins a well-formed tag')
}

function checkPng(t: ExecutionContext, r: Rendered): void {
  t.deepEqual([...r.png.subarray(0, 8)], PNG_SIGNATURE, 'PNG signature')
  t.is(String.fromCharCode(...r.png.subarray(12, 16)), 'IHDR')
  const { width, height } = pngSize(r.png)
  t.true(width > 0 && height > 0, `IHDR ${width}×${height}`)
  const svg = svgSize(r.svg)
  // Rasterised at 2× for sharpness.
  t.is(width, Math.ceil(svg.width * 2))
  t.is(height, Math.ceil(svg.height * 2))
}

function checkRendered(t: ExecutionContext, r: Rendered, texts: string[]): void {
  checkSvgSyntax(t, r.svg)
  for (const s of texts) t.true(r.svg.includes(s), `SVG contains ${JSON.stringify(s)}`)
  checkPng(t, r)
}

/** Text content of every <text> element (vega writes one line per element, or <tspan>s). */
function svgTexts(svg: string): string[] {
  return [...svg.matchAll(/<text\b[^>]*>([\s\S]*?)<\/text>/g)].map((m) => m[1].replace(/<[^>]*>/g, ''))
}

async function timed<T>(t: ExecutionContext, what: string, f: () => Promise<T>): Promise<T> {
  const t0 = performance.now()
  const r = await f()
  t.log(`${what}: ${(performance.now() - t0).toFixed(0)} ms`)
  return r
}

function luminance(rgba: Uint8Array, i: number): number {
  return 0.299 * rgba[i * 4] + 0.587 * rgba[i * 4 + 1] + 0.114 * rgba[i * 4 + 2]
}

function history(epochs: number, withVal = true): HistoryRow[] {
  return Array.from({ length: epochs }, (_, e) => ({
    epoch: e + 1,
    trainLoss: 2.3 * Math.exp(-e / 4) + 0.1,
    trainAccuracy: 0.98 - 0.7 * Math.exp(-e / 3),
    ...(withVal ? { valLoss: 2.3 * Math.exp(-e / 4) + 0.3 + 0.01 * Math.max(0, e - 6), valAccuracy: 0.92 - 0.7 * Math.exp(-e / 3) } : {}),
    lr: e < 5 ? 1e-3 : 1e-4,
  }))
}

/** A plausible confusion matrix: ~90% on the diagonal, errors mostly to the next two classes. */
function confusion(K: number, perClass: number): Uint32Array {
  const c = new Uint32Array(K * K)
  for (let i = 0; i < K; i++) {
    const wrong = Math.round(perClass * (0.04 + 0.12 * ((i * 7) % 5) / 4))
    c[i * K + i] = perClass - wrong
    c[i * K + ((i + 1) % K)] += Math.ceil(wrong * 0.6)
    c[i * K + ((i + 2) % K)] += wrong - Math.ceil(wrong * 0.6)
  }
  return c
}

// ---------------------------------------------------------------------------------------------
// Fonts

test('a CJK font is found on this machine (Noto Sans CJK from fonts-noto-cjk)', (t) => {
  if (!CJK_FONT) return t.fail(NO_FONT)
  t.log(CJK_FONT)
  t.true(CJK_FONT.files.length > 0)
  for (const f of CJK_FONT.files) t.true(fs.existsSync(f), f)
  t.truthy(CJK_FONT.family)
})

test('findCjkFont: none found gives null; a bad KANA_PLOTS_FONT is an error naming the package', (t) => {
  const nowhere = [{ files: ['/nonexistent/NotoSansCJK-Regular.ttc'], family: 'Noto Sans CJK JP' }]
  t.is(findCjkFont({ env: {}, candidates: nowhere, fontconfig: false }), null)
  const err = t.throws(() => findCjkFont({ env: { KANA_PLOTS_FONT: '/nonexistent/font.ttc' } }), { instanceOf: FontError })
  t.regex(err!.message, /fonts-noto-cjk/)
  t.is((err as FontError).code, 'ENOCJKFONT')
  if (CJK_FONT) {
    const viaEnv = findCjkFont({ env: { KANA_PLOTS_FONT: CJK_FONT.files[0], KANA_PLOTS_FONT_FAMILY: 'Noto Sans CJK JP' } })
    t.deepEqual(viaEnv, { files: [CJK_FONT.files[0]], family: 'Noto Sans CJK JP', source: 'env' })
  }
})

test('rasterize: Japanese text without a CJK font is a clear error (not a PNG with blanks)', async (t) => {
  const svg = '<svg xmlns="http://www.w3.org/2000/svg" width="60" height="30"><text x="5" y="20" font-size="14">あい</text></svg>'
  const err = await t.throwsAsync(rasterize(svg, { font: null }), { instanceOf: FontError })
  t.regex(err!.message, /fonts-noto-cjk/)
  t.regex(err!.message, /apt-get install fonts-noto-cjk/)
  // Latin-only charts do not need the CJK font.
  const latin = await rasterize(svg.replace('あい', 'ab'), { font: null })
  t.deepEqual([...latin.png.subarray(0, 8)], PNG_SIGNATURE)
})

test('each K49 character renders as its own glyph (no tofu), with and without the glyph cache', async (t) => {
  if (!CJK_FONT) return t.fail(NO_FONT)
  const names = (await k49Names(t)) ?? K49_FALLBACK
  t.is(names.length, 49)
  for (const glyphCache of [true, false]) {
    const seen = new Map<string, string>()
    for (const ch of names) {
      const svg = `<svg xmlns="http://www.w3.org/2000/svg" width="40" height="40"><rect width="40" height="40" fill="white"/><text text-anchor="middle" transform="translate(20,30)" font-family="sans-serif" font-size="24px" fill="#000">${ch}</text></svg>`
      const r = await rasterize(svg, { scale: 1, glyphCache })
      let ink = 0
      let bits = ''
      for (let i = 0; i < r.width * r.height; i++) {
        const dark = luminance(r.rgba, i) < 128
        if (dark) ink++
        bits += dark ? '1' : '0'
      }
      t.true(ink > 20, `${ch}: ${ink} dark pixels (glyphCache ${glyphCache})`)
      t.false(seen.has(bits), `${ch} looks exactly like ${seen.get(bits)} (tofu?) (glyphCache ${glyphCache})`)
      seen.set(bits, ch)
    }
  }
})

test('the glyph cache draws the same pixels as resvg laying out the text itself', async (t) => {
  if (!CJK_FONT) return t.fail(NO_FONT)
  const names = (await k49Names(t)) ?? K49_FALLBACK
  const r = await confusionHeatmap(confusion(49, 100), names)
  const prepared = prepareForRaster(r.svg, CJK_FONT)
  // Every class-name label became glyph paths: no <text> with kana left for resvg to shape.
  t.is(svgTexts(prepared).filter((s) => /[\u3040-\u30ff]/.test(s)).length, 0)
  t.true(svgTexts(r.svg).filter((s) => names.includes(s)).length >= 98, 'the returned SVG keeps real <text> labels')
  const cached = await rasterize(r.svg)
  const plain = await rasterize(r.svg, { glyphCache: false })
  t.is(cached.width, plain.width)
  t.is(cached.height, plain.height)
  let differ = 0
  for (let i = 0; i < cached.width * cached.height; i++) if (Math.abs(luminance(cached.rgba, i) - luminance(plain.rgba, i)) > 64) differ++
  t.log(`pixels differing by > 64 levels: ${differ} of ${cached.width * cached.height}`)
  t.true(differ <= cached.width * cached.height * 1e-4)
})

test('Latin text uses a Latin-first font stack written without quotes (resvg mis-parses quoted lists)', async (t) => {
  const r = await classDistribution([3, 5], ['a', 'b'])
  t.false(r.svg.includes('&quot;'))
  t.regex(r.svg, /font-family="[^"]*DejaVu Sans[^"]*Noto Sans CJK JP[^"]*"/)
})

// ---------------------------------------------------------------------------------------------
// Timing: serial, before the concurrent tests, so the numbers mean something. The budget is
// ~1.5 s per chart; the bound asserted is looser because other work may share the machine.

test.serial('render times (each chart, warm)', async (t) => {
  if (!CJK_FONT) return t.fail(NO_FONT)
  const names = (await k49Names(t)) ?? K49_FALLBACK
  const km = names.slice(0, 10)
  await timed(t, 'first render (loads vega, vega-lite, resvg; finds fonts; caches 49 glyphs)', () => classDistribution(names.map(() => 1), names))
  const jobs: [string, () => Promise<Rendered>][] = [
    ['lossCurves 30 epochs', () => lossCurves(history(30), { bestEpoch: 20 })],
    ['confusionHeatmap K=49', () => confusionHeatmap(confusion(49, 200), names)],
    ['confusionHeatmap K=10 with numbers', () => confusionHeatmap(confusion(10, 800), km)],
    ['classDistribution K=49', () => classDistribution(names.map((_, i) => 100 + i), names)],
    ['sampleGrid 25 images', () => sampleGrid(new Uint8Array(25 * 784).map((_, i) => (i * 7) % 256), 784, Array.from({ length: 25 }, (_, i) => i), names)],
    ['comparisonCurves 3 runs', () => comparisonCurves([1, 2, 3].map((k) => ({ name: `run ${k}`, history: history(30) })))],
  ]
  for (const [what, job] of jobs) {
    const t0 = performance.now()
    await job()
    const ms = performance.now() - t0
    t.log(`${what}: ${ms.toFixed(0)} ms`)
    t.true(ms < 5000, `${what} took ${ms.toFixed(0)} ms`)
  }
})

// ---------------------------------------------------------------------------------------------
// Charts

test('lossCurves: loss and accuracy panels, train vs validation, best-epoch rule', async (t) => {
  const r = await timed(t, 'lossCurves (20 epochs)', () => lossCurves(history(20), { title: 'MLP on KMNIST', bestEpoch: 12 }))
  checkRendered(t, r, ['MLP on KMNIST', 'loss', 'accuracy', 'epoch', 'train', 'validation', 'best: epoch 12', 'learning rate'])
  t.true(svgTexts(r.svg).some((s) => s.startsWith('best epoch 12:')), 'subtitle summarises the best epoch')
  if (PREVIEW) await writeRendered(path.join(PREVIEW, 'loss-curves-10class'), r)
})

test('lossCurves: without validation data or a best epoch; bad input is refused', async (t) => {
  const r = await lossCurves(history(5, false).map(({ lr: _lr, ...h }) => h))
  checkRendered(t, r, ['loss', 'accuracy', 'train'])
  t.false(svgTexts(r.svg).includes('validation'))
  t.false(r.svg.includes('learning rate'))
  await t.throwsAsync(lossCurves([]), { instanceOf: RangeError })
  await t.throwsAsync(lossCurves([{ epoch: Number.NaN, trainLoss: 1, trainAccuracy: 0.5 }]), { instanceOf: TypeError })
})

test('confusionHeatmap: 49 K49 classes, Japanese names on both axes, readable and fast', async (t) => {
  if (!CJK_FONT) return t.fail(NO_FONT)
  const names = await k49Names(t)
  if (!names) return t.fail(`the K49 classmap is missing: ${K49_CLASSMAP}`)
  const c = confusion(49, 200)
  const r = await timed(t, 'confusionHeatmap K=49 (first, fills the glyph cache)', () => confusionHeatmap(c, names, { title: 'K49 confusion' }))
  checkRendered(t, r, ['K49 confusion', 'predicted class', 'true class'])
  const texts = svgTexts(r.svg)
  for (const ch of names) t.is(texts.filter((s) => s === ch).length, 2, `${ch} labels both axes`)
  const again = await timed(t, 'confusionHeatmap K=49 (again)', () => confusionHeatmap(c, names, { normalize: true }))
  checkRendered(t, again, ['share of the true class'])
  if (PREVIEW) {
    await writeRendered(path.join(PREVIEW, 'confusion-k49'), r)
    await writeRendered(path.join(PREVIEW, 'confusion-k49-normalized'), again)
  }
})

test('confusionHeatmap: Japanese labels put ink where ASCII labels of the same layout do not', async (t) => {
  if (!CJK_FONT) return t.fail(NO_FONT)
  const names = (await k49Names(t)) ?? K49_FALLBACK
  // 49 distinct one-character ASCII names: the layout (label widths estimated per character) is
  // identical, so every pixel that differs belongs to a class-name label.
  const ascii = [...'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvw']
  const c = confusion(49, 50)
  const jp = await confusionHeatmap(c, names)
  const en = await confusionHeatmap(c, ascii)
  t.notDeepEqual(Buffer.from(jp.png), Buffer.from(en.png))
  t.true(svgTexts(jp.svg).includes('ゝ'))
  const a = await rasterize(jp.svg)
  const b = await rasterize(en.svg)
  t.is(a.width, b.width)
  t.is(a.height, b.height)
  let jpInk = 0
  let minX = Infinity
  let minY = Infinity
  for (let i = 0; i < a.width * a.height; i++) {
    if (luminance(a.rgba, i) < 110 && luminance(b.rgba, i) > 200) {
      jpInk++
      minX = Math.min(minX, i % a.width)
      minY = Math.min(minY, Math.floor(i / a.width))
    }
  }
  t.log(`dark kana pixels where the ASCII chart is light: ${jpInk}`)
  // 98 labels of ~11 px kana at 2×: well over 10 dark pixels each.
  t.true(jpInk > 98 * 10)
  // The labels sit left of and above the cells, so the differences start near the chart's edges.
  t.true(minX < a.width * 0.1 && minY < a.height * 0.2, `label region starts at (${minX}, ${minY})`)
})

test('confusionHeatmap: K ≤ 20 prints the numbers in the cells; bad input is refused', async (t) => {
  const names = ['o', 'ki', 'su']
  const c = [50, 3, 0, 2, 40, 1, 0, 7, 44]
  const r = await confusionHeatmap(c, names, { title: 'three classes' })
  checkRendered(t, r, ['three classes', 'predicted class', 'true class', 'errors'])
  const texts = svgTexts(r.svg)
  for (const n of ['50', '40', '44', '7']) t.true(texts.includes(n), `cell ${n}`)
  const rates = await confusionHeatmap(c, names, { normalize: true })
  t.true(svgTexts(rates.svg).includes('94%'), '50 of 53 → 94%')
  await t.throwsAsync(confusionHeatmap([1, 2, 3], names), { instanceOf: RangeError })
  await t.throwsAsync(confusionHeatmap([1, 2, 3, -1], ['a', 'b']), { instanceOf: RangeError })
  await t.throwsAsync(confusionHeatmap([], []), { instanceOf: RangeError })
})

test('classDistribution: a bar per class with its name, and the mean', async (t) => {
  const names = (await k49Names(t)) ?? K49_FALLBACK
  const counts = names.map((_, i) => 60 + ((i * 37) % 61))
  const r = await timed(t, 'classDistribution K=49', () => classDistribution(counts, names, { title: 'K49 labels' }))
  checkRendered(t, r, ['K49 labels', 'samples', 'class', 'mean '])
  const texts = svgTexts(r.svg)
  for (const ch of names) t.true(texts.includes(ch), ch)
  await t.throwsAsync(classDistribution([1, 2], ['a']), { instanceOf: RangeError })
  await t.throwsAsync(classDistribution([1, Number.NaN], ['a', 'b']), { instanceOf: RangeError })
})

test('sampleGrid: dark ink on white, label names underneath (real KMNIST images when present)', async (t) => {
  let images: Uint8Array
  let labels: ArrayLike<number>
  let names: string[]
  if (fs.existsSync(path.join(KMNIST, 'X_images.npy'))) {
    images = (await loadImages(path.join(KMNIST, 'X_images.npy'))).images
    labels = (await loadLabels(path.join(KMNIST, 'y_images.npy'))).labels
    names = await loadClassmap(path.join(KMNIST, 'kmnist_classmap.csv'))
  } else {
    t.log(`shared data missing: ${KMNIST}; using synthetic images`)
    images = new Uint8Array(30 * 784).map((_, i) => ((i % 28) * (Math.floor(i / 28) % 28)) % 256)
    labels = Array.from({ length: 30 }, (_, i) => i % 10)
    names = [...'おきすつなはまやれを']
  }
  const r = await timed(t, 'sampleGrid 25 images', () => sampleGrid(images, 784, labels, names, { title: 'KMNIST samples' }))
  checkRendered(t, r, ['KMNIST samples', '<image'])
  t.is((r.svg.match(/<image\b/g) ?? []).length, 25)
  const texts = svgTexts(r.svg)
  for (let k = 0; k < 25; k++) t.true(texts.includes(names[labels[k]]), `label of image ${k}`)
  if (PREVIEW) await writeRendered(path.join(PREVIEW, 'samples'), r)
})

test('sampleGrid: each tile shows the exact pixels, 255 = black ink, 0 = white paper', async (t) => {
  const img = new Uint8Array(784)
  for (let i = 0; i < 784; i++) img[i] = (i * 13) % 256
  const blank = new Uint8Array(784)
  const r = await sampleGrid(Uint8Array.from([...img, ...blank]), 784, null, null, { columns: 2 })
  const hrefs = [...r.svg.matchAll(/<image\b[^>]*\s(?:xlink:)?href="(data:image\/png;base64,[^"]+)"/g)].map((m) => m[1])
  t.is(hrefs.length, 2)
  // Decode the embedded PNG with resvg at 1:1 and compare with the input.
  const tile = await rasterize(`<svg xmlns="http://www.w3.org/2000/svg" width="28" height="28"><image href="${hrefs[0]}" width="28" height="28"/></svg>`, { scale: 1 })
  let worst = 0
  for (let i = 0; i < 784; i++) worst = Math.max(worst, Math.abs(tile.rgba[i * 4] - (255 - img[i])))
  t.true(worst <= 1, `max pixel error ${worst}`)
  // No labels: no text under the tiles.
  t.deepEqual(svgTexts(r.svg).filter((s) => s !== 'Samples' && !s.startsWith('first ')), [])
  // A fully inked image makes a solid black square of 84×84 px (168×168 in the 2× PNG).
  const ink = await rasterize((await sampleGrid(new Uint8Array(784).fill(255), 784, [3], null)).svg)
  let dark = 0
  for (let i = 0; i < ink.width * ink.height; i++) if (luminance(ink.rgba, i) < 20) dark++
  t.true(dark >= 160 * 160, `${dark} black pixels`)
})

test('sampleGrid: names or numbers as labels, and input checks', async (t) => {
  const imgs = new Uint8Array(4 * 16).fill(200)
  const r = await sampleGrid(imgs, 16, [0, 1, 2, 7], ['a', 'b', 'c'], { count: 4, columns: 4 })
  const texts = svgTexts(r.svg)
  for (const s of ['a', 'b', 'c', '7']) t.true(texts.includes(s), s)
  checkPng(t, r)
  await t.throwsAsync(sampleGrid(new Uint8Array(10), 10, null, null), { instanceOf: RangeError }) // not square
  await t.throwsAsync(sampleGrid(new Uint8Array(20), 16, null, null), { instanceOf: RangeError }) // partial image
  await t.throwsAsync(sampleGrid(imgs, 16, [0], null), { instanceOf: RangeError }) // too few labels
})

test('comparisonCurves: validation loss of several models on one chart', async (t) => {
  const runs = [
    { name: 'mlp-128', history: history(15).map((h) => ({ ...h, valLoss: h.valLoss! * 1.1, valAccuracy: h.valAccuracy! - 0.02 })) },
    { name: 'mlp-256', history: history(15) },
    { name: 'mlp-512', history: history(10).map((h) => ({ ...h, valLoss: h.valLoss! * 0.95, valAccuracy: h.valAccuracy! - 0.01 })) },
  ]
  const r = await timed(t, 'comparisonCurves 3 runs', () => comparisonCurves(runs, { title: 'Width sweep' }))
  const lowest = runs.map((run) => ({ name: run.name, best: Math.min(...run.history.map((h) => h.valLoss!)) })).reduce((a, b) => (b.best < a.best ? b : a))
  checkRendered(t, r, ['Width sweep', 'validation loss', 'epoch', 'mlp-128', 'mlp-256', 'mlp-512', `best overall: ${lowest.name}`])
  const acc = await comparisonCurves(runs, { metric: 'valAccuracy' })
  checkRendered(t, acc, ['validation accuracy', 'best overall: mlp-256'])
  await t.throwsAsync(comparisonCurves([]), { instanceOf: RangeError })
  await t.throwsAsync(comparisonCurves([{ name: 'x', history: history(3, false) }]), { instanceOf: RangeError })
})

test('writeRendered: .svg and .png written whole, parent folders created, no temp files left', async (t) => {
  const r = await classDistribution([1, 2, 3], ['a', 'b', 'c'])
  const base = path.join(tmp, 'nested', 'dir', 'dist')
  await writeRendered(base, r)
  t.is(fs.readFileSync(`${base}.svg`, 'utf8'), r.svg)
  t.deepEqual(new Uint8Array(fs.readFileSync(`${base}.png`)), new Uint8Array(r.png))
  t.deepEqual(fs.readdirSync(path.dirname(base)).sort(), ['dist.png', 'dist.svg'])
  // Overwriting works too (rename over an existing file).
  await writeRendered(base, r)
  t.deepEqual(fs.readdirSync(path.dirname(base)).sort(), ['dist.png', 'dist.svg'])
})
