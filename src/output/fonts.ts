// Fonts for the charts: Kuzushiji class names are kana (あ, い, ゝ …), which most Latin fonts lack;
// resvg would silently drop them. So a CJK font is located (KANA_PLOTS_FONT, a list of well-known
// install paths, then fontconfig), handed to resvg explicitly as fontFiles + defaultFontFamily
// (render.ts), and system fonts are loaded as well. If a chart contains CJK text and no such font
// exists, rasterising fails with a FontError that names the package to install (fonts-noto-cjk).
import { existsSync } from 'node:fs'
import { execFileSync } from 'node:child_process'
import * as path from 'node:path'

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

export const INSTALL_HINT =
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

export function defaultFont(): CjkFont | null {
  if (fontCache === undefined) fontCache = findCjkFont()
  return fontCache
}

/** Characters that only a CJK font draws: CJK punctuation, kana, ideographs, full-width forms. */
export const NEEDS_CJK = /[\u2E80-\u9FFF\uF900-\uFAFF\uFE30-\uFE4F\uFF00-\uFFEF\u{20000}-\u{3FFFF}]/u

/** Latin fonts tried first for ordinary text (numbers, titles): cheap to lay out, see rasterize(). */
const LATIN_FAMILIES = ['Helvetica Neue', 'Arial', 'Liberation Sans', 'Noto Sans', 'DejaVu Sans']
const CJK_FAMILIES = ['Noto Sans CJK JP', 'Noto Sans JP', 'Source Han Sans JP', 'Hiragino Sans', 'Yu Gothic', 'IPAexGothic']

function quoteFamilies(names: (string | null | undefined)[]): string {
  const unique = [...new Set(names.filter((n): n is string => !!n))]
  // Unquoted where CSS allows: resvg mis-parses some quoted lists and then uses only the default.
  return [...unique.map((n) => (/^[A-Za-z][A-Za-z0-9 -]*$/.test(n) ? n : `"${n.replace(/"/g, '')}"`)), 'sans-serif'].join(', ')
}

/** Font stack written into the SVG: Latin fonts first, the CJK font for everything they lack. */
export function latinFirstStack(font: CjkFont | null): string {
  return quoteFamilies([...LATIN_FAMILIES, font?.family, ...CJK_FAMILIES])
}

/** Font stack for text that contains CJK characters. */
export function cjkFirstStack(font: CjkFont | null): string {
  return quoteFamilies([font?.family, ...CJK_FAMILIES, ...LATIN_FAMILIES])
}
