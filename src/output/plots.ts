// Charts for people: training curves, confusion matrices, class balance, sample images and model
// comparisons. Each chart is a Vega-Lite spec, compiled by vega-lite, rendered headless to SVG by
// vega (`renderer: 'none'` + `toSVG()`), and rasterised to PNG by resvg at 2× for sharpness.
//
// Fonts: Kuzushiji class names are kana (あ, い, ゝ …), which most Latin fonts lack; resvg would
// silently drop them. So a CJK font is located (KANA_PLOTS_FONT, a list of well-known install
// paths, then fontconfig), handed to resvg explicitly as fontFiles + defaultFontFamily, and
// system fonts are loaded as well. If a chart contains CJK text and no such font exists,
// rasterising fails with a FontError that names the package to install (fonts-noto-cjk).
//
// Sample images: drawn as vega `image` marks, each fed a data: URL of an 8-bit grayscale PNG
// encoded here (node:zlib deflate + a CRC-32 table, ~40 lines; no PNG library needed). The
// alternative, one Vega-Lite rect per pixel, works too but means 19,600 marks for 25 images:
// ~1 MB of SVG, ~2× slower, and hairline seams between cells when scaled. The embedded PNGs keep
// the SVG small (~20 KB), render with nearest-neighbour upscaling (`smooth: false`) in resvg and
// browsers alike, and show each image's exact pixels.
//
// vega, vega-lite and resvg are loaded on first use (~0.3 s), so importing this module is free.

import { promises as fsp, existsSync } from 'node:fs'
import { execFileSync } from 'node:child_process'
import * as path from 'node:path'
import { deflateSync } from 'node:zlib'
import type { TopLevelSpec } from 'vega-lite'

// ---------------------------------------------------------------------------------------------
// Public types

export interface Rendered {
  svg: string
  png: Uint8Array
}

export interface HistoryRow {
  epoch: number
  trainLoss: number
  trainAccuracy: number
  valLoss?: number
  valAccuracy?: number
  lr?: number
}

export interface LossCurvesOptions {
  title?: string
  /** Draws a dashed rule at this epoch in every panel (e.g. the early-stopping checkpoint). */
  bestEpoch?: number
}

export interface ConfusionOptions {
  title?: string
  /** Colour (and label) each cell by its share of the true class (row) instead of its count. */
  normalize?: boolean
}

export interface DistributionOptions {
  title?: string
}

export interface SampleGridOptions {
  /** How many images, from the first (default 25). */
  count?: number
  /** Images per row (default ⌈√count⌉). */
  columns?: number
  /** Image side in pixels (default √features). */
  width?: number
  title?: string
}

export type CurveMetric = 'valLoss' | 'valAccuracy' | 'trainLoss' | 'trainAccuracy'

export interface ComparisonOptions {
  title?: string
  /** Which history column to compare (default 'valLoss'). */
  metric?: CurveMetric
}

// ---------------------------------------------------------------------------------------------
// Lazy-loaded rendering libraries

type VegaModule = typeof import('vega')
type VegaLiteModule = typeof import('vega-lite')
type ResvgModule = typeof import('@resvg/resvg-js')

let libsCache: { vega: VegaModule; vl: VegaLiteModule; resvg: ResvgModule } | undefined

function libs(): { vega: VegaModule; vl: VegaLiteModule; resvg: ResvgModule } {
  if (!libsCache) {
    libsCache = {
      vega: require('vega') as VegaModule,
      vl: require('vega-lite') as VegaLiteModule,
      resvg: require('@resvg/resvg-js') as ResvgModule,
    }
  }
  return libsCache
}

// ---------------------------------------------------------------------------------------------
// Fonts

/** A font able to draw Japanese: the files to hand to resvg and, when known, its family name. */
export interface CjkFont {
  files: string[]
  family: string | null
  /** Where it was found: the KANA_PLOTS_FONT variable, a well-known path, or fontconfig. */
  source: 'env' | 'known-path' | 'fontconfig'
}

/** Raised when a chart needs a CJK font and none is installed (code 'ENOCJKFONT'). */
export class FontError extends Error {
  readonly code = 'ENOCJKFONT'
  constructor(message: string) {
    super(message)
    this.name = 'FontError'
  }
}

/** Well-known install locations, best first. Extra files (bold weights) are loaded when present. */
export const KNOWN_CJK_FONTS: ReadonlyArray<{ files: string[]; family: string }> = [
  // Debian / Ubuntu: fonts-noto-cjk
  { files: ['/usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc', '/usr/share/fonts/opentype/noto/NotoSansCJK-Bold.ttc'], family: 'Noto Sans CJK JP' },
  { files: ['/usr/share/fonts/opentype/noto/NotoSansCJKjp-Regular.otf', '/usr/share/fonts/opentype/noto/NotoSansCJKjp-Bold.otf'], family: 'Noto Sans CJK JP' },
  // Fedora (google-noto-sans-cjk-*), Arch (noto-fonts-cjk), Alpine (font-noto-cjk)
  { files: ['/usr/share/fonts/google-noto-cjk/NotoSansCJK-Regular.ttc', '/usr/share/fonts/google-noto-cjk/NotoSansCJK-Bold.ttc'], family: 'Noto Sans CJK JP' },
  { files: ['/usr/share/fonts/google-noto-sans-cjk-vf-fonts/NotoSansCJK-VF.ttc'], family: 'Noto Sans CJK JP' },
  { files: ['/usr/share/fonts/noto-cjk/NotoSansCJK-Regular.ttc', '/usr/share/fonts/noto-cjk/NotoSansCJK-Bold.ttc'], family: 'Noto Sans CJK JP' },
  { files: ['/usr/share/fonts/noto/NotoSansCJK-Regular.ttc', '/usr/share/fonts/noto/NotoSansCJK-Bold.ttc'], family: 'Noto Sans CJK JP' },
  // Debian / Ubuntu: fonts-ipaexfont-gothic, fonts-ipafont-gothic, fonts-takao-gothic
  { files: ['/usr/share/fonts/opentype/ipaexfont-gothic/ipaexg.ttf'], family: 'IPAexGothic' },
  { files: ['/usr/share/fonts/opentype/ipafont-gothic/ipagp.ttf'], family: 'IPAPGothic' },
  { files: ['/usr/share/fonts/truetype/takao-gothic/TakaoPGothic.ttf'], family: 'TakaoPGothic' },
  // macOS
  { files: ['/System/Library/Fonts/ヒラギノ角ゴシック W3.ttc', '/System/Library/Fonts/ヒラギノ角ゴシック W6.ttc'], family: 'Hiragino Sans' },
  { files: ['/System/Library/Fonts/Hiragino Sans GB.ttc'], family: 'Hiragino Sans GB' },
  { files: ['/Library/Fonts/Arial Unicode.ttf'], family: 'Arial Unicode MS' },
  { files: ['/System/Library/Fonts/Supplemental/Arial Unicode.ttf'], family: 'Arial Unicode MS' },
  // Windows
  { files: ['C:\\Windows\\Fonts\\YuGothR.ttc', 'C:\\Windows\\Fonts\\YuGothB.ttc'], family: 'Yu Gothic' },
  { files: ['C:\\Windows\\Fonts\\meiryo.ttc', 'C:\\Windows\\Fonts\\meiryob.ttc'], family: 'Meiryo' },
  { files: ['C:\\Windows\\Fonts\\msgothic.ttc'], family: 'MS Gothic' },
]

const INSTALL_HINT =
  'On Debian/Ubuntu install the package fonts-noto-cjk (sudo apt-get install fonts-noto-cjk); ' +
  'on Fedora google-noto-sans-cjk-fonts, on Arch noto-fonts-cjk, on Alpine font-noto-cjk. ' +
  'Or point KANA_PLOTS_FONT at a font file with Japanese glyphs (several: separated by "' +
  path.delimiter +
  '"), optionally naming its family in KANA_PLOTS_FONT_FAMILY.'

export interface FontSearch {
  /** Environment to read KANA_PLOTS_FONT / KANA_PLOTS_FONT_FAMILY from (default process.env). */
  env?: Record<string, string | undefined>
  /** Candidate locations (default KNOWN_CJK_FONTS). */
  candidates?: ReadonlyArray<{ files: string[]; family: string }>
  /** Ask fontconfig (`fc-list :lang=ja`) as a last resort (default true). */
  fontconfig?: boolean
}

/**
 * Finds a font with Japanese glyphs: $KANA_PLOTS_FONT first, then well-known install paths,
 * then fontconfig. Returns null when there is none. Throws FontError when KANA_PLOTS_FONT names
 * a file that does not exist (an explicit request should not be silently ignored).
 */
export function findCjkFont(search: FontSearch = {}): CjkFont | null {
  const env = search.env ?? process.env
  const fromEnv = env.KANA_PLOTS_FONT?.trim()
  if (fromEnv) {
    const files = fromEnv.split(path.delimiter).map((f) => f.trim()).filter((f) => f !== '')
    const missing = files.filter((f) => !existsSync(f))
    if (missing.length > 0) {
      throw new FontError(`KANA_PLOTS_FONT names ${missing.map((f) => JSON.stringify(f)).join(', ')}, which does not exist. ${INSTALL_HINT}`)
    }
    return { files, family: env.KANA_PLOTS_FONT_FAMILY?.trim() || null, source: 'env' }
  }
  for (const c of search.candidates ?? KNOWN_CJK_FONTS) {
    if (c.files.length > 0 && existsSync(c.files[0])) {
      return { files: c.files.filter((f) => existsSync(f)), family: c.family, source: 'known-path' }
    }
  }
  if (search.fontconfig ?? true) return fontconfigCjkFont()
  return null
}

function fontconfigCjkFont(): CjkFont | null {
  let out: string
  try {
    out = execFileSync('fc-list', [':lang=ja', 'file', 'family'], { encoding: 'utf8', timeout: 5000, stdio: ['ignore', 'pipe', 'ignore'] })
  } catch {
    return null // no fontconfig here
  }
  const fonts = out
    .split('\n')
    .map((line) => /^(.*?):\s*(.*)$/.exec(line.trim()))
    .filter((m): m is RegExpExecArray => m !== null && m[1] !== '' && existsSync(m[1]))
    .map((m) => ({ file: m[1], family: m[2].split(',')[0].trim() || null }))
  if (fonts.length === 0) return null
  // Prefer a sans-serif (gothic) face: it reads better at axis-label sizes than a mincho.
  const best = fonts.find((f) => /sans|gothic/i.test(f.family ?? '')) ?? fonts[0]
  return { files: [best.file], family: best.family, source: 'fontconfig' }
}

let fontCache: CjkFont | null | undefined

function defaultFont(): CjkFont | null {
  if (fontCache === undefined) fontCache = findCjkFont()
  return fontCache
}

/** Characters that only a CJK font draws: CJK punctuation, kana, ideographs, full-width forms. */
const NEEDS_CJK = /[\u2E80-\u9FFF\uF900-\uFAFF\uFE30-\uFE4F\uFF00-\uFFEF\u{20000}-\u{3FFFF}]/u

/** Latin fonts tried first for ordinary text (numbers, titles): cheap to lay out, see rasterize(). */
const LATIN_FAMILIES = ['Helvetica Neue', 'Arial', 'Liberation Sans', 'Noto Sans', 'DejaVu Sans']
const CJK_FAMILIES = ['Noto Sans CJK JP', 'Noto Sans JP', 'Source Han Sans JP', 'Hiragino Sans', 'Yu Gothic', 'IPAexGothic']

function quoteFamilies(names: (string | null | undefined)[]): string {
  const unique = [...new Set(names.filter((n): n is string => !!n))]
  // Unquoted where CSS allows: resvg mis-parses some quoted lists and then uses only the default.
  return [...unique.map((n) => (/^[A-Za-z][A-Za-z0-9 -]*$/.test(n) ? n : `"${n.replace(/"/g, '')}"`)), 'sans-serif'].join(', ')
}

/** Font stack written into the SVG: Latin fonts first, the CJK font for everything they lack. */
function latinFirstStack(font: CjkFont | null): string {
  return quoteFamilies([...LATIN_FAMILIES, font?.family, ...CJK_FAMILIES])
}

/** Font stack for text that contains CJK characters. */
function cjkFirstStack(font: CjkFont | null): string {
  return quoteFamilies([font?.family, ...CJK_FAMILIES, ...LATIN_FAMILIES])
}

// ---------------------------------------------------------------------------------------------
// SVG → PNG
//
// Speed: with resvg, every glyph drawn from a big CID-keyed CFF font like Noto Sans CJK costs
// ~5–10 ms (the font is re-parsed per glyph), and every text element that needs font fallback
// ~100 ms; a 49-class confusion matrix took 2.5 s. So before rasterising:
//  - text without CJK characters keeps the Latin-first stack (DejaVu & co: ~0.5 ms per element);
//  - text made only of full-width CJK characters (kana, kanji; e.g. class-name labels) is drawn
//    from a per-process cache of glyph outlines, which resvg itself extracted once from the CJK
//    font (its `toString()` gives text as paths); these glyphs all advance 1 em in the fonts
//    this is enabled for, so laying them out needs no shaping;
//  - any other text with CJK characters gets the CJK-first stack (resvg lays it out, slower).
// The returned `svg` of a chart is untouched: only the copy handed to resvg is rewritten.

export interface RasterOptions {
  /** Zoom factor (default 2). */
  scale?: number
  /** Font to use; default: findCjkFont() (cached). null: none (system fonts only). */
  font?: CjkFont | null
  /** Draw pure-CJK text from the glyph-outline cache (default true); false: let resvg lay it out. */
  glyphCache?: boolean
}

export interface Raster {
  png: Uint8Array
  width: number
  height: number
  /** Straight RGBA bytes, width × height × 4 (for tests and checks). */
  rgba: Uint8Array
}

type ResvgFontOptions = NonNullable<import('@resvg/resvg-js').ResvgRenderOptions['font']>

function resvgFontOptions(font: CjkFont | null, loadSystemFonts: boolean): ResvgFontOptions {
  const o: ResvgFontOptions = { loadSystemFonts, fontFiles: font?.files ?? [] }
  if (font?.family) {
    o.defaultFontFamily = font.family
    o.sansSerifFamily = font.family
  }
  return o
}

/** Runs of these characters are drawn from the glyph cache: all are 1 em wide in CJK fonts. */
const FULL_WIDTH_RUN = /^[\u3001-\u303F\u3041-\u3096\u309B-\u309F\u30A0-\u30FF\u3400-\u4DBF\u4E00-\u9FFF\uF900-\uFAFF\uFF01-\uFF60]+$/
/** Families whose kana and kanji all advance exactly 1 em (not the proportional "P" variants). */
const MONOSPACED_CJK_FAMILY = /^(Noto (Sans|Serif) CJK (JP|SC|TC|HK|KR)|Source Han (Sans|Serif)( JP)?|Hiragino (Sans|Kaku Gothic)|IPAexGothic|IPAGothic|TakaoGothic|MS Gothic|Yu Gothic|Meiryo)$/

const UNITS = 1000 // glyph outlines are cached at font-size 1000 with the baseline origin at (0, 0)
const glyphCaches = new Map<string, Map<string, string>>()

function glyphCacheFor(font: CjkFont): Map<string, string> {
  const key = `${font.files.join('\n')}\n${font.family}`
  let cache = glyphCaches.get(key)
  if (!cache) glyphCaches.set(key, (cache = new Map()))
  return cache
}

/**
 * Adds the outlines of `chars` to `cache` (path data in 1/1000 em, y down, origin on the
 * baseline at the pen position), extracted in one resvg pass. Returns false if resvg's output is
 * not in the expected shape, in which case callers fall back to ordinary text.
 */
function extractGlyphs(chars: string[], font: CjkFont, cache: Map<string, string>): boolean {
  const band = 2 * UNITS
  const family = (font.family ?? '').replace(/"/g, '')
  const svg =
    `<svg xmlns="http://www.w3.org/2000/svg" width="${chars.length * band}" height="${band}">` +
    chars.map((c, i) => `<text x="${i * band}" y="${UNITS}" font-family="${family}" font-size="${UNITS}">${c}</text>`).join('') +
    '</svg>'
  let out: string
  try {
    out = new (libs().resvg.Resvg)(svg, { font: resvgFontOptions(font, false), logLevel: 'off' }).toString()
  } catch {
    return false
  }
  if (/\btransform=/.test(out)) return false
  const found = new Map<number, string[]>()
  for (const m of out.matchAll(/<path\b[^>]*?\sd="([^"]*)"/g)) {
    const d = m[1]
    if (!/^[MLCQZ0-9.\-\s,]*$/.test(d)) return false // absolute x,y pairs only
    const first = /-?\d*\.?\d+/.exec(d)
    if (!first) continue
    const i = Math.floor((Number(first[0]) + UNITS / 2) / band)
    if (i < 0 || i >= chars.length) return false
    let k = 0
    const local = d.replace(/-?\d*\.?\d+/g, (num) => {
      const v = Number(num) - (k++ % 2 === 0 ? i * band : UNITS)
      return String(Math.round(v * 10) / 10)
    })
    found.set(i, [...(found.get(i) ?? []), local])
  }
  chars.forEach((c, i) => cache.set(c, (found.get(i) ?? []).join(' ')))
  return true
}

const TEXT_ELEMENT = /<text\b([^>]*)>([^<]*)<\/text>/g

function attrOf(attrs: string, name: string): string | undefined {
  const m = new RegExp(`\\s${name}="([^"]*)"`).exec(attrs)
  return m?.[1]
}

const num = (x: number): string => String(Math.round(x * 1000) / 1000)

/** Replaces one vega-style <text> of full-width CJK characters by cached glyph paths, or null. */
function textAsGlyphs(attrs: string, text: string, cache: Map<string, string>): string | null {
  if (/\s(style|dx|dy|rotate|textLength|lengthAdjust|letter-spacing|word-spacing|clip-path|mask|filter)=/.test(attrs)) return null
  const anchor = attrOf(attrs, 'text-anchor')
  const size = /^(\d*\.?\d+)(px)?$/.exec(attrOf(attrs, 'font-size') ?? '')
  const weight = attrOf(attrs, 'font-weight')
  const style = attrOf(attrs, 'font-style')
  const stroke = attrOf(attrs, 'stroke')
  if (!anchor || !['start', 'middle', 'end'].includes(anchor) || !size) return null
  if ((weight && weight !== 'normal' && weight !== '400') || (style && style !== 'normal') || (stroke && stroke !== 'none')) return null
  const x = Number(attrOf(attrs, 'x') ?? 0)
  const y = Number(attrOf(attrs, 'y') ?? 0)
  if (!Number.isFinite(x) || !Number.isFinite(y)) return null
  const fs = Number(size[1])
  const chars = [...text]
  if (chars.some((c) => !cache.has(c))) return null
  const width = chars.length * fs
  const x0 = x - (anchor === 'middle' ? width / 2 : anchor === 'end' ? width : 0)
  const group = ['transform', 'fill', 'fill-opacity', 'opacity']
    .map((a) => [a, attrOf(attrs, a)] as const)
    .filter(([, v]) => v !== undefined)
    .map(([a, v]) => `${a}="${v}"`)
  if (attrOf(attrs, 'fill') === undefined) group.push('fill="#000"')
  const scale = num(fs / UNITS)
  const paths = chars
    .map((c, k) => {
      const d = cache.get(c)
      return d ? `<path transform="translate(${num(x0 + k * fs)},${num(y)}) scale(${scale})" d="${d}"/>` : ''
    })
    .join('')
  return `<g ${group.join(' ')}>${paths}</g>`
}

/** The copy of `svg` that resvg gets: see the note above RasterOptions. Exported for tests. */
export function prepareForRaster(svg: string, font: CjkFont | null, useCache = true): string {
  if (!font || !NEEDS_CJK.test(svg)) return svg
  const cacheable = useCache && font.family !== null && MONOSPACED_CJK_FAMILY.test(font.family)
  const cache = cacheable ? glyphCacheFor(font) : null
  if (cache) {
    const missing = new Set<string>()
    for (const m of svg.matchAll(TEXT_ELEMENT)) {
      if (FULL_WIDTH_RUN.test(m[2])) for (const c of m[2]) if (!cache.has(c)) missing.add(c)
    }
    if (missing.size > 0 && !extractGlyphs([...missing], font, cache)) {
      for (const c of missing) cache.delete(c)
    }
  }
  const cjkStack = cjkFirstStack(font).replace(/"/g, '&quot;')
  return svg.replace(TEXT_ELEMENT, (whole, attrs: string, text: string) => {
    if (!NEEDS_CJK.test(text)) return whole
    if (cache && FULL_WIDTH_RUN.test(text)) {
      const glyphs = textAsGlyphs(attrs, text, cache)
      if (glyphs !== null) return glyphs
    }
    return `<text${attrs.replace(/\sfont-family="[^"]*"/, '')} font-family="${cjkStack}">${text}</text>`
  })
}

/**
 * Rasterises an SVG with resvg: the CJK font's files are passed explicitly (and are the default
 * family), and system fonts are loaded too. Throws FontError if the SVG contains CJK text and no
 * CJK font is available, instead of writing a PNG with the class names missing.
 */
export async function rasterize(svg: string, opts: RasterOptions = {}): Promise<Raster> {
  const scale = opts.scale ?? 2
  if (!(scale > 0 && Number.isFinite(scale))) throw new RangeError(`scale must be a positive number, got ${scale}`)
  const font = opts.font !== undefined ? opts.font : defaultFont()
  if (!font) {
    const m = NEEDS_CJK.exec(svg)
    if (m) throw new FontError(`This chart contains Japanese text (e.g. "${m[0]}") but no font with Japanese glyphs was found, so the PNG would show blanks. ${INSTALL_HINT}`)
  }
  const image = await libs().resvg.renderAsync(prepareForRaster(svg, font, opts.glyphCache ?? true), {
    fitTo: { mode: 'zoom', value: scale },
    font: resvgFontOptions(font, true),
    shapeRendering: 2, // geometricPrecision
    textRendering: 1, // optimizeLegibility
    imageRendering: 1, // optimizeSpeed: nearest-neighbour for the embedded sample images
    logLevel: 'off',
  })
  const png = image.asPng()
  return { png, width: image.width, height: image.height, rgba: image.pixels }
}

/** Compiles a Vega-Lite spec, renders it to SVG with headless vega, and rasterises it. */
export async function renderSpec(spec: TopLevelSpec, opts: RasterOptions = {}): Promise<Rendered> {
  const { vega, vl } = libs()
  const compiled = vl.compile(spec).spec
  const view = new vega.View(vega.parse(compiled), { renderer: 'none' })
  view.logLevel(vega.Error)
  try {
    const svg = await view.toSVG()
    const { png } = await rasterize(svg, opts)
    return { svg, png }
  } finally {
    view.finalize()
  }
}

/** Writes `<base>.svg` and `<base>.png`, each to a temporary name first and then renamed. */
export async function writeRendered(basePathWithoutExt: string, r: Rendered): Promise<void> {
  await fsp.mkdir(path.dirname(path.resolve(basePathWithoutExt)), { recursive: true })
  await writeAtomic(`${basePathWithoutExt}.svg`, r.svg)
  await writeAtomic(`${basePathWithoutExt}.png`, r.png)
}

async function writeAtomic(file: string, data: string | Uint8Array): Promise<void> {
  const tmp = `${file}.${process.pid}.${Math.random().toString(36).slice(2, 10)}.tmp`
  try {
    await fsp.writeFile(tmp, data)
    await fsp.rename(tmp, file)
  } catch (e) {
    await fsp.rm(tmp, { force: true })
    throw e
  }
}

// ---------------------------------------------------------------------------------------------
// Shared look

const INK = '#333'
const MUTED = '#777'
const TRAIN = '#4c78a8'
const VALID = '#f58518'
const ACCENT = '#e45756'

function config(font: CjkFont | null): Record<string, unknown> {
  return {
    font: latinFirstStack(font),
    background: 'white',
    padding: 16,
    view: { stroke: null },
    title: { fontSize: 17, fontWeight: 'bold', color: '#222', anchor: 'start', offset: 12, subtitleFontSize: 12, subtitleColor: MUTED, subtitlePadding: 4 },
    axis: {
      labelFontSize: 11,
      labelColor: INK,
      titleFontSize: 12,
      titleFontWeight: 'normal',
      titleColor: INK,
      domainColor: '#aaa',
      tickColor: '#aaa',
      gridColor: '#ececec',
    },
    legend: { labelFontSize: 12, labelColor: INK, titleFontSize: 11, titleFontWeight: 'normal', titleColor: MUTED, symbolStrokeWidth: 2.5 },
    header: { labelFontSize: 13, labelColor: INK, titleFontSize: 13 },
  }
}

const SCHEMA = 'https://vega.github.io/schema/vega-lite/v5.json'

function render(spec: Record<string, unknown>): Promise<Rendered> {
  const font = defaultFont()
  return renderSpec({ $schema: SCHEMA, ...spec, config: config(font) } as unknown as TopLevelSpec, { font })
}

const clamp = (x: number, lo: number, hi: number): number => Math.min(hi, Math.max(lo, x))
const isNum = (x: unknown): x is number => typeof x === 'number' && Number.isFinite(x)

function fmt(x: number, digits = 3): string {
  if (x === 0) return '0'
  const a = Math.abs(x)
  if (a >= 1000) return Math.round(x).toLocaleString('en-US')
  if (a >= 0.001) return String(Number(x.toPrecision(digits)))
  return x.toExponential(1)
}

const pct = (x: number, digits = 1): string => `${(x * 100).toFixed(digits)}%`
const count = (n: number): string => Math.round(n).toLocaleString('en-US')

/** A Vega expression mapping an integer class index (datum.value) to its name. */
function nameLabelExpr(names: string[]): string {
  return `${JSON.stringify(names)}[datum.value]`
}

function checkNames(classNames: string[], k: number, what: string): void {
  if (!Array.isArray(classNames)) throw new TypeError(`${what}: classNames must be an array of strings`)
  if (classNames.length !== k) throw new RangeError(`${what}: ${classNames.length} class names for ${k} classes`)
}

// ---------------------------------------------------------------------------------------------
// Training curves

function checkHistory(history: HistoryRow[], what: string): void {
  if (!Array.isArray(history) || history.length === 0) throw new RangeError(`${what}: history is empty`)
  for (const [i, h] of history.entries()) {
    if (!isNum(h?.epoch)) throw new TypeError(`${what}: history[${i}].epoch must be a finite number, got ${h?.epoch}`)
  }
}

/** Accuracy axis: fractions get a percent format; values above 1 are taken as percentages already. */
function accuracyAxis(values: number[]): { format: string; title: string } {
  const max = values.length ? Math.max(...values) : 1
  return max > 1.000001 ? { format: '~r', title: 'accuracy (%)' } : { format: '.0%', title: 'accuracy' }
}

/**
 * y scale + axis settings for positive values: a log scale fitted to the data with ticks at
 * 1-2-5 steps when they span more than 8×, else a linear scale that need not start at zero.
 */
function yScaleFor(values: number[], format: string, allowLog = true): { log: boolean; scale: Record<string, unknown>; axis: Record<string, unknown> } {
  if (!allowLog || !logWorthy(values)) return { log: false, scale: { zero: false }, axis: { format } }
  const lo = Math.min(...values)
  const hi = Math.max(...values)
  const ticksAt = (mantissas: number[]): number[] => {
    const out: number[] = []
    for (let e = Math.floor(Math.log10(lo)); e <= Math.ceil(Math.log10(hi)); e++) {
      for (const m of mantissas) {
        const v = Number((m * 10 ** e).toPrecision(6))
        if (v >= lo * 0.999 && v <= hi * 1.001) out.push(v)
      }
    }
    return out
  }
  let ticks = ticksAt([1, 2, 5])
  if (ticks.length < 4) ticks = ticksAt([1, 2, 3, 5])
  return { log: true, scale: { type: 'log', domain: [lo / 1.08, hi * 1.08], nice: false }, axis: { format, values: ticks } }
}

function logWorthy(values: number[]): boolean {
  const pos = values.filter((v) => v > 0)
  return pos.length === values.length && pos.length > 1 && Math.max(...pos) / Math.min(...pos) > 8
}

function epochAxis(history: HistoryRow[]): Record<string, unknown> {
  const epochs = history.map((h) => h.epoch)
  return {
    field: 'epoch',
    type: 'quantitative',
    title: 'epoch',
    scale: { domain: [Math.min(...epochs), Math.max(...epochs)], nice: false, zero: false },
    axis: { format: 'd', tickMinStep: 1, grid: false },
  }
}

/**
 * Two panels, loss and accuracy per epoch, train vs validation (plus a learning-rate panel when
 * the rate changes). A dashed rule marks `bestEpoch` when given.
 */
export async function lossCurves(history: HistoryRow[], opts: LossCurvesOptions = {}): Promise<Rendered> {
  checkHistory(history, 'lossCurves')
  const rows: { epoch: number; split: string; metric: string; value: number }[] = []
  for (const h of history) {
    if (isNum(h.trainLoss)) rows.push({ epoch: h.epoch, split: 'train', metric: 'loss', value: h.trainLoss })
    if (isNum(h.valLoss)) rows.push({ epoch: h.epoch, split: 'validation', metric: 'loss', value: h.valLoss })
    if (isNum(h.trainAccuracy)) rows.push({ epoch: h.epoch, split: 'train', metric: 'accuracy', value: h.trainAccuracy })
    if (isNum(h.valAccuracy)) rows.push({ epoch: h.epoch, split: 'validation', metric: 'accuracy', value: h.valAccuracy })
  }
  const splits = [...new Set(rows.map((r) => r.split))].sort()
  const losses = rows.filter((r) => r.metric === 'loss').map((r) => r.value)
  const accs = rows.filter((r) => r.metric === 'accuracy').map((r) => r.value)
  const lossY = yScaleFor(losses, '~g')
  const acc = accuracyAxis(accs)
  const showPoints = history.length <= 40
  const best = opts.bestEpoch
  if (best !== undefined && !isNum(best)) throw new TypeError(`lossCurves: bestEpoch must be a finite number, got ${best}`)
  const epochs = history.map((h) => h.epoch)
  const lastEpoch = Math.max(...epochs)
  const firstEpoch = Math.min(...epochs)
  const bestOnRight = best !== undefined && best > (firstEpoch + lastEpoch) / 2

  const bestLayers = (withLabel: boolean): Record<string, unknown>[] =>
    best === undefined
      ? []
      : [
          {
            data: { values: [{ epoch: best }] },
            mark: { type: 'rule', color: MUTED, strokeDash: [5, 4], strokeWidth: 1.5, clip: true },
            encoding: { x: { field: 'epoch', type: 'quantitative' } },
          },
          ...(withLabel ? [{
            data: { values: [{ epoch: best, text: `best: epoch ${best}` }] },
            mark: { type: 'text', color: MUTED, fontSize: 11, align: bestOnRight ? 'right' : 'left', dx: bestOnRight ? -5 : 5, baseline: 'top', y: 2 },
            encoding: { x: { field: 'epoch', type: 'quantitative' }, text: { field: 'text' } },
          }] : []),
        ]

  const color = {
    field: 'split',
    type: 'nominal',
    scale: { domain: splits, range: splits.map((s) => (s === 'train' ? TRAIN : VALID)) },
    legend: { title: null, orient: 'top', direction: 'horizontal', symbolType: 'stroke' },
  }
  const panel = (metric: string, y: Record<string, unknown>): Record<string, unknown> => ({
    width: 340,
    height: 230,
    layer: [
      {
        transform: [{ filter: `datum.metric === '${metric}'` }],
        mark: { type: 'line', strokeWidth: 2, point: showPoints ? { size: 28, filled: true } : false },
        encoding: { x: epochAxis(history), y: { field: 'value', type: 'quantitative', ...y }, color },
      },
      ...bestLayers(metric === 'loss'),
    ],
  })

  const panels = [
    panel('loss', { title: lossY.log ? 'loss (log scale)' : 'loss', scale: lossY.scale, axis: lossY.axis }),
    panel('accuracy', { title: acc.title, scale: { zero: false }, axis: { format: acc.format } }),
  ]

  const lrs = history.filter((h) => isNum(h.lr)).map((h) => ({ epoch: h.epoch, lr: h.lr as number }))
  if (lrs.length > 1 && new Set(lrs.map((l) => l.lr)).size > 1) {
    const lrY = yScaleFor(lrs.map((l) => l.lr), '.0e')
    panels.push({
      width: 200,
      height: 230,
      layer: [
        {
          data: { values: lrs },
          mark: { type: 'line', strokeWidth: 2, color: '#888', interpolate: 'step-after' },
          encoding: {
            x: epochAxis(history),
            y: { field: 'lr', type: 'quantitative', title: lrY.log ? 'learning rate (log scale)' : 'learning rate', scale: lrY.scale, axis: lrY.axis },
          },
        },
        ...bestLayers(false),
      ],
    })
  }

  const summaryAt = (h: HistoryRow, label: string): string => {
    const parts = [`train loss ${fmt(h.trainLoss)}`]
    if (isNum(h.valLoss)) parts.push(`val loss ${fmt(h.valLoss)}`)
    if (isNum(h.valAccuracy)) parts.push(`val accuracy ${acc.format === '.0%' ? pct(h.valAccuracy) : fmt(h.valAccuracy)}`)
    else if (isNum(h.trainAccuracy)) parts.push(`train accuracy ${acc.format === '.0%' ? pct(h.trainAccuracy) : fmt(h.trainAccuracy)}`)
    return `${label}: ${parts.join(' · ')}`
  }
  const bestRow = best === undefined ? undefined : history.find((h) => h.epoch === best)
  const lastRow = history.reduce((a, b) => (b.epoch > a.epoch ? b : a))
  const subtitle = bestRow ? summaryAt(bestRow, `best epoch ${best}`) : summaryAt(lastRow, `epoch ${lastRow.epoch} (last)`)

  return render({
    title: { text: opts.title ?? 'Training curves', subtitle },
    data: { values: rows },
    hconcat: panels,
    spacing: 36,
    resolve: { scale: { color: 'shared' }, legend: { color: 'shared' } },
  })
}

/** One line per run: a history column (validation loss by default) per epoch, best epoch marked. */
export async function comparisonCurves(runs: { name: string; history: HistoryRow[] }[], opts: ComparisonOptions = {}): Promise<Rendered> {
  if (!Array.isArray(runs) || runs.length === 0) throw new RangeError('comparisonCurves: no runs given')
  const metric: CurveMetric = opts.metric ?? 'valLoss'
  const higherIsBetter = metric.endsWith('Accuracy')
  const seen = new Map<string, number>()
  const rows: { epoch: number; run: string; value: number }[] = []
  const bests: { epoch: number; run: string; value: number }[] = []
  const order: string[] = []
  for (const r of runs) {
    checkHistory(r.history, `comparisonCurves (run ${JSON.stringify(r.name)})`)
    let name = String(r.name)
    const n = (seen.get(name) ?? 0) + 1
    seen.set(name, n)
    if (n > 1) name = `${name} (${n})`
    const pts = r.history.filter((h) => isNum(h[metric])).map((h) => ({ epoch: h.epoch, run: name, value: h[metric] as number }))
    if (pts.length === 0) continue
    const b = pts.reduce((a, p) => ((higherIsBetter ? p.value > a.value : p.value < a.value) ? p : a))
    const label = `${name} — best ${higherIsBetter && b.value <= 1 ? pct(b.value) : fmt(b.value)} @ ${b.epoch}`
    for (const p of pts) rows.push({ ...p, run: label })
    bests.push({ ...b, run: label })
    order.push(label)
  }
  if (rows.length === 0) throw new RangeError(`comparisonCurves: no run has any ${metric} values`)
  const values = rows.map((r) => r.value)
  const isAcc = metric.endsWith('Accuracy')
  const acc = accuracyAxis(values)
  const yFit = yScaleFor(values, isAcc ? acc.format : '~g', !isAcc)
  const logY = yFit.log
  const titles: Record<CurveMetric, string> = { valLoss: 'validation loss', valAccuracy: 'validation accuracy', trainLoss: 'training loss', trainAccuracy: 'training accuracy' }
  const yTitle = isAcc ? titles[metric] + (acc.format === '.0%' ? '' : ' (%)') : titles[metric] + (logY ? ' (log scale)' : '')
  const epochs = rows.map((r) => r.epoch)
  const maxLen = Math.max(...runs.map((r) => r.history.length))
  const color = {
    field: 'run',
    type: 'nominal',
    sort: order,
    scale: { scheme: order.length <= 10 ? 'tableau10' : 'tableau20' },
    legend: { title: `model — best ${isAcc ? '(highest)' : '(lowest)'} @ epoch`, orient: 'right', symbolType: 'stroke', labelLimit: 360, titleLimit: 360 },
  }
  const x = {
    field: 'epoch',
    type: 'quantitative',
    title: 'epoch',
    scale: { domain: [Math.min(...epochs), Math.max(...epochs)], nice: false, zero: false },
    axis: { format: 'd', tickMinStep: 1, grid: false },
  }
  const y = { field: 'value', type: 'quantitative', title: yTitle, scale: yFit.scale, axis: yFit.axis }
  const winner = bests.reduce((a, b) => ((higherIsBetter ? b.value > a.value : b.value < a.value) ? b : a))
  return render({
    title: {
      text: opts.title ?? `Model comparison: ${titles[metric]}`,
      subtitle: `${order.length} model${order.length === 1 ? '' : 's'} · best overall: ${winner.run.split(' — ')[0]} (${isAcc && winner.value <= 1 ? pct(winner.value) : fmt(winner.value)} at epoch ${winner.epoch})`,
    },
    width: 520,
    height: 300,
    layer: [
      { data: { values: rows }, mark: { type: 'line', strokeWidth: 2, point: maxLen <= 40 ? { size: 22, filled: true } : false }, encoding: { x, y, color } },
      { data: { values: bests }, mark: { type: 'point', filled: true, size: 110, stroke: 'white', strokeWidth: 1.5, opacity: 1 }, encoding: { x, y, color } },
    ],
  })
}

// ---------------------------------------------------------------------------------------------
// Confusion matrix

/**
 * K×K heatmap: row = true class, column = predicted class, class names on both axes. Correct
 * predictions (the diagonal) are blue and errors orange, each on its own square-root scale, so
 * the worst confusions stand out even next to a diagonal of much larger counts; empty cells stay
 * white. Colour is the count or, with `normalize`, the share of the true class (row). Numbers are
 * printed in the cells when K ≤ 20.
 */
export async function confusionHeatmap(confusion: ArrayLike<number>, classNames: string[], opts: ConfusionOptions = {}): Promise<Rendered> {
  const K = classNames?.length ?? 0
  if (K === 0) throw new RangeError('confusionHeatmap: no class names given')
  checkNames(classNames, K, 'confusionHeatmap')
  if (!confusion || confusion.length !== K * K) throw new RangeError(`confusionHeatmap: confusion must have K*K = ${K * K} entries for ${K} class names, got ${confusion?.length}`)
  const normalize = opts.normalize ?? false
  const rowSums = new Array<number>(K).fill(0)
  let total = 0
  let trace = 0
  for (let i = 0; i < K * K; i++) {
    const c = confusion[i]
    if (!(isNum(c) && c >= 0)) throw new RangeError(`confusionHeatmap: confusion[${i}] must be a non-negative count, got ${c}`)
    rowSums[Math.floor(i / K)] += c
    total += c
    if (i % (K + 1) === 0) trace += c
  }
  const cells: { t: number; p: number; v: number; r: number; x: number; label: string; dark: boolean }[] = []
  for (let t = 0; t < K; t++) {
    for (let p = 0; p < K; p++) {
      const v = confusion[t * K + p]
      if (v === 0) continue
      const r = rowSums[t] > 0 ? v / rowSums[t] : 0
      // Shares under 1% get no number (the colour still shows them): fewer digits to wade through.
      const label = normalize ? (r >= 0.995 ? '100%' : r < 0.01 ? '' : `${Math.round(r * 100)}%`) : v >= 100_000 ? `${Math.round(v / 1000)}k` : String(Math.round(v * 100) / 100)
      cells.push({ t, p, v, r, x: normalize ? r : v, label, dark: false })
    }
  }
  const diag = cells.filter((c) => c.t === c.p)
  const off = cells.filter((c) => c.t !== c.p)
  const maxDiag = normalize ? 1 : Math.max(1, ...diag.map((c) => c.x))
  const maxOff = Math.max(normalize ? 0.01 : 1, ...off.map((c) => c.x))
  // White text on the darker part of each ramp (sqrt scale: 0.45 of the domain ≈ 2/3 of the ramp).
  for (const c of diag) c.dark = c.x > 0.45 * maxDiag
  for (const c of off) c.dark = c.x > 0.45 * maxOff

  const step = clamp(Math.floor(680 / K), 14, 46)
  const maxNameLen = Math.max(...classNames.map((n) => [...String(n)].length))
  const domain = Array.from({ length: K }, (_, i) => i)
  const labelExpr = nameLabelExpr(classNames.map(String))
  // A pale background with white lines between cells: rows and columns stay traceable across a
  // sparse 49×49 matrix, and empty cells read as "none" rather than as margin.
  const axisCommon = { labelExpr, ticks: false, domain: false, labelPadding: 5, labelFontSize: step >= 18 ? 12 : 11, titleFontSize: 13, titlePadding: 10, labelLimit: 140, grid: true, gridColor: 'white', gridWidth: step >= 20 ? 1 : 0.5, bandPosition: 0 }
  const legend = (title: string): Record<string, unknown> => ({ title, format: normalize ? '.0%' : '~s', gradientLength: clamp(step * K * 0.3, 90, 200), orient: 'right', tickCount: 4 })
  // Three-stop ramps (light → vivid → dark): on a √ scale the middle stop sits at a quarter of the max.
  const cellRect = (values: typeof cells, field: string, range: [string, string, string], max: number, title: string): Record<string, unknown> => ({
    data: { values },
    mark: { type: 'rect', stroke: 'white', strokeWidth: step >= 20 ? 1 : 0.5 },
    encoding: { color: { field, type: 'quantitative', scale: { type: 'sqrt', range, interpolate: 'lab', domain: [0, max / 4, max] }, legend: legend(title) } },
  })
  const textLayer =
    K <= 20
      ? [
          {
            data: { values: cells },
            mark: { type: 'text', fontSize: step >= 36 ? 12 : 10 },
            encoding: { text: { field: 'label' }, color: { condition: { test: 'datum.dark', value: 'white' }, value: '#222' } },
          },
        ]
      : []
  const errors = total - trace
  const subtitle = [
    `${count(total)} samples · accuracy ${total > 0 ? pct(trace / total) : 'n/a'} · ${count(errors)} errors`,
    `blue: correct, orange: errors · shade: ${normalize ? 'share of the true class' : 'count'} (√ scale)`,
  ]
  return render({
    title: { text: opts.title ?? 'Confusion matrix', subtitle },
    width: { step },
    height: { step },
    view: { fill: '#f7f7f7', stroke: null },
    encoding: {
      x: { field: 'p', type: 'ordinal', title: 'predicted class', scale: { domain }, axis: { ...axisCommon, orient: 'top', labelAngle: maxNameLen > 2 ? -50 : 0, labelAlign: maxNameLen > 2 ? 'left' : 'center' } },
      y: { field: 't', type: 'ordinal', title: 'true class', scale: { domain }, axis: { ...axisCommon } },
    },
    layer: [
      // Diagonal guide, visible where a class was never predicted correctly.
      { data: { values: domain.map((i) => ({ t: i, p: i })) }, mark: { type: 'rect', fill: '#e6e6e6', stroke: 'white', strokeWidth: step >= 20 ? 1 : 0.5 } },
      cellRect(diag.map((c) => ({ ...c, correct: c.x })), 'correct', ['#deebf7', '#4292c6', '#08306b'], maxDiag, 'correct'),
      cellRect(off.map((c) => ({ ...c, error: c.x })), 'error', ['#fff1e2', '#fd8d3c', '#a63603'], maxOff, 'errors'),
      ...textLayer,
    ],
    resolve: { scale: { color: 'independent' }, legend: { color: 'independent' } },
  })
}

// ---------------------------------------------------------------------------------------------
// Class distribution

/** Bar chart of samples per class, with a dashed rule at the mean (i.e. the balanced count). */
export async function classDistribution(counts: number[], classNames: string[], opts: DistributionOptions = {}): Promise<Rendered> {
  const K = counts?.length ?? 0
  if (K === 0) throw new RangeError('classDistribution: no counts given')
  checkNames(classNames, K, 'classDistribution')
  counts.forEach((c, i) => {
    if (!(isNum(c) && c >= 0)) throw new RangeError(`classDistribution: counts[${i}] must be a non-negative number, got ${c}`)
  })
  const total = counts.reduce((a, b) => a + b, 0)
  const mean = total / K
  let lo = 0
  let hi = 0
  counts.forEach((c, i) => {
    if (c < counts[lo]) lo = i
    if (c > counts[hi]) hi = i
  })
  const step = clamp(Math.floor(760 / K), 13, 56)
  const maxNameLen = Math.max(...classNames.map((n) => [...String(n)].length))
  const values = counts.map((n, i) => ({ i, n, label: count(n), below: n < mean }))
  const ratio = counts[lo] > 0 ? `${(counts[hi] / counts[lo]).toFixed(1)}×` : '∞'
  // Class names stay out of the subtitle: mixed Latin/kana text is slow to rasterise (see rasterize).
  const subtitle = [`${count(total)} samples in ${K} classes · ${count(counts[lo])} to ${count(counts[hi])} per class (max/min ${ratio})`, 'lighter bars: below the mean']
  const meanData = { values: [{ mean, label: `mean ${mean >= 100 ? count(mean) : fmt(mean, 3)}` }] }
  return render({
    title: { text: opts.title ?? 'Samples per class', subtitle },
    width: { step },
    height: 260,
    layer: [
      // The mean rule goes first, behind the bars and their numbers.
      { data: meanData, mark: { type: 'rule', color: ACCENT, strokeDash: [6, 4], strokeWidth: 1.5 }, encoding: { y: { field: 'mean', type: 'quantitative' } } },
      {
        data: { values },
        mark: { type: 'bar', width: { band: 0.78 }, cornerRadiusTopLeft: 2, cornerRadiusTopRight: 2 },
        encoding: {
          x: {
            field: 'i',
            type: 'ordinal',
            title: 'class',
            scale: { domain: counts.map((_, i) => i) },
            axis: { labelExpr: nameLabelExpr(classNames.map(String)), labelAngle: maxNameLen > 2 ? -50 : 0, labelFontSize: 12, ticks: false, labelPadding: 5 },
          },
          y: { field: 'n', type: 'quantitative', title: 'samples', axis: { format: '~s', tickCount: 6 } },
          color: {
            field: 'below',
            type: 'nominal',
            scale: { domain: [false, true], range: [TRAIN, '#9ecae9'] },
            legend: null,
          },
        },
      },
      ...(K <= 24
        ? [{ data: { values }, mark: { type: 'text', baseline: 'bottom', dy: -3, fontSize: 10, color: INK }, encoding: { x: { field: 'i', type: 'ordinal' }, y: { field: 'n', type: 'quantitative' }, text: { field: 'label' } } }]
        : []),
      { data: meanData, mark: { type: 'text', color: ACCENT, align: 'left', baseline: 'middle', dx: 6, fontSize: 11, x: { expr: 'width' } }, encoding: { y: { field: 'mean', type: 'quantitative' }, text: { field: 'label' } } },
    ],
  })
}

// ---------------------------------------------------------------------------------------------
// Sample images

const CRC_TABLE = (() => {
  const t = new Uint32Array(256)
  for (let n = 0; n < 256; n++) {
    let c = n
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1
    t[n] = c >>> 0
  }
  return t
})()

function crc32(bytes: Uint8Array): number {
  let c = 0xffffffff
  for (let i = 0; i < bytes.length; i++) c = CRC_TABLE[(c ^ bytes[i]) & 0xff] ^ (c >>> 8)
  return (c ^ 0xffffffff) >>> 0
}

function pngChunk(type: string, data: Uint8Array): Buffer {
  const out = Buffer.alloc(12 + data.length)
  out.writeUInt32BE(data.length, 0)
  out.write(type, 4, 'latin1')
  out.set(data, 8)
  out.writeUInt32BE(crc32(out.subarray(4, 8 + data.length)), 8 + data.length)
  return out
}

/** Encodes an 8-bit grayscale image (row-major, 0 = black) as a PNG. */
export function encodeGrayPng(gray: Uint8Array, width: number, height: number): Buffer {
  if (gray.length !== width * height) throw new RangeError(`encodeGrayPng: ${gray.length} bytes for ${width}×${height}`)
  const raw = Buffer.alloc((width + 1) * height)
  for (let y = 0; y < height; y++) {
    raw[y * (width + 1)] = 0 // filter: none
    raw.set(gray.subarray(y * width, (y + 1) * width), y * (width + 1) + 1)
  }
  const ihdr = Buffer.alloc(13)
  ihdr.writeUInt32BE(width, 0)
  ihdr.writeUInt32BE(height, 4)
  ihdr[8] = 8 // bit depth
  ihdr[9] = 0 // colour type: grayscale
  return Buffer.concat([
    Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]),
    pngChunk('IHDR', ihdr),
    pngChunk('IDAT', deflateSync(raw)),
    pngChunk('IEND', new Uint8Array(0)),
  ])
}

/**
 * A grid of the first `count` images (width×width, one byte per pixel, 255 = ink), drawn dark on
 * white like ink on paper, each with its label's name underneath.
 */
export async function sampleGrid(
  images: Uint8Array,
  features: number,
  labels: ArrayLike<number> | null,
  classNames: string[] | null,
  opts: SampleGridOptions = {},
): Promise<Rendered> {
  if (!(images instanceof Uint8Array)) throw new TypeError('sampleGrid: images must be a Uint8Array (one byte per pixel)')
  if (!(Number.isInteger(features) && features > 0)) throw new RangeError(`sampleGrid: features must be a positive integer, got ${features}`)
  if (images.length % features !== 0) throw new RangeError(`sampleGrid: ${images.length} bytes is not a whole number of ${features}-pixel images`)
  const side = opts.width ?? Math.round(Math.sqrt(features))
  if (!(Number.isInteger(side) && side > 0 && side * side === features)) {
    throw new RangeError(`sampleGrid: images must be square: width ${side} does not give ${features} features (width² = ${side * side})`)
  }
  const available = images.length / features
  const n = Math.min(opts.count ?? 25, available)
  if (!(Number.isInteger(n) && n > 0)) throw new RangeError(`sampleGrid: nothing to draw (count ${opts.count ?? 25}, ${available} images)`)
  if (labels && labels.length < n) throw new RangeError(`sampleGrid: ${labels.length} labels for ${n} images`)
  const columns = Math.min(n, opts.columns ?? Math.ceil(Math.sqrt(n)))
  if (!(Number.isInteger(columns) && columns > 0)) throw new RangeError(`sampleGrid: columns must be a positive integer, got ${opts.columns}`)
  const rows = Math.ceil(n / columns)

  const cell = side * Math.max(1, Math.round(84 / side)) // 28 px → 84 px tiles
  const gap = 12
  const labelH = labels ? 22 : 0
  const nameOf = (l: number): string => (classNames && Number.isInteger(l) && l >= 0 && l < classNames.length ? String(classNames[l]) : String(l))

  const tiles: { x: number; y: number; x2: number; y2: number; cx: number; ly: number; url: string; name: string }[] = []
  const gray = new Uint8Array(features)
  for (let k = 0; k < n; k++) {
    const img = images.subarray(k * features, (k + 1) * features)
    for (let i = 0; i < features; i++) gray[i] = 255 - img[i] // 255 = ink → black
    const x = (k % columns) * (cell + gap)
    const y = Math.floor(k / columns) * (cell + labelH + gap)
    tiles.push({
      x,
      y,
      x2: x + cell,
      y2: y + cell,
      cx: x + cell / 2,
      ly: y + cell + 4,
      url: `data:image/png;base64,${encodeGrayPng(gray, side, side).toString('base64')}`,
      name: labels ? nameOf(labels[k]) : '',
    })
  }
  const width = columns * (cell + gap) - gap
  const height = rows * (cell + labelH + gap) - gap
  const pos = (field: string): Record<string, unknown> => ({ field, type: 'quantitative', scale: null, axis: null })
  const shown = labels ? new Set(Array.from({ length: n }, (_, k) => labels[k])).size : 0
  const subtitle = `first ${n} of ${count(available)} images${labels ? ` · ${shown} distinct label${shown === 1 ? '' : 's'}` : ''}`
  return render({
    title: { text: opts.title ?? 'Samples', subtitle },
    width,
    height,
    data: { values: tiles },
    layer: [
      { mark: { type: 'rect', fill: 'white', stroke: '#d0d0d0', strokeWidth: 1, aria: false }, encoding: { x: pos('x'), x2: { field: 'x2' }, y: pos('y'), y2: { field: 'y2' } } },
      {
        mark: { type: 'image', width: cell, height: cell, align: 'left', baseline: 'top', smooth: false, aria: false },
        encoding: { x: pos('x'), y: pos('y'), url: { field: 'url' } },
      },
      ...(labels
        ? [{ mark: { type: 'text', fontSize: 15, baseline: 'top', align: 'center', color: '#222' }, encoding: { x: pos('cx'), y: pos('ly'), text: { field: 'name' } } }]
        : []),
    ],
  })
}
