// A chart's Vega-Lite spec to pictures: compiled by vega-lite, rendered headless to SVG by vega
// (`renderer: 'none'` + `toSVG()`), and rasterised to PNG by resvg at 2× for sharpness, with the
// CJK font of fonts.ts. vega, vega-lite and resvg are loaded on first use (~0.3 s), so importing
// this module is free.
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
import { promises as fsp } from 'node:fs'
import * as path from 'node:path'
import type { TopLevelSpec } from 'vega-lite'
import { FontError, INSTALL_HINT, NEEDS_CJK, cjkFirstStack, defaultFont, type CjkFont } from './fonts'

/** A chart as SVG and as PNG. */
export interface Rendered {
  svg: string
  png: Uint8Array
}

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

/** The copy of `svg` that resvg gets: see this file's note on speed. Exported for tests. */
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
