// `kana-native report`: one self-contained HTML file, for an experiment directory and for a single
// train run directory — its structure, and how it looks in a real browser (Debian's Chromium
// through playwright-core; skipped with a message when /usr/bin/chromium is absent).
import test from 'ava'
import { existsSync, mkdtempSync, readFileSync, statSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { runExperiment } from '../src/experiment/experiment'
import { buildReport, writeReport } from '../src/output/report'
import { train } from '../src/training/train'
import { CHROMIUM, classmap, hasKmnist, launchChromium, miniConfig, miniData } from './experiment-fixtures'

const SECTIONS = ['data', 'comparison', 'curves', 'confusion', 'search', 'agreement', 'reproduce', 'machine']
const RUN_SECTIONS = ['data', 'comparison', 'curves', 'confusion', 'reproduce', 'machine']

let dirs: Promise<{ experiment: string; run: string }> | undefined
/** One miniature experiment and one tiny train run, made once for every test in this file. */
function fixtures() {
  dirs ??= (async () => {
    const data = await miniData()
    const experiment = mkdtempSync(join(tmpdir(), 'kana-report-exp-'))
    await runExperiment({ ...miniConfig, data: hasKmnist ? { classmap } : undefined, inMemory: data, out: experiment, report: false })
    const run = mkdtempSync(join(tmpdir(), 'kana-report-run-'))
    await train({ data, classmap: hasKmnist ? classmap : undefined, hidden: [32], epochs: 2, seed: 1, threads: 2, out: run, command: ['kana-native', 'train', '--hidden', '32', '--epochs', '2', '--seed', '1'] })
    return { experiment, run }
  })()
  return dirs
}

function checkSelfContained(t: import('ava').ExecutionContext, html: string) {
  t.notRegex(html, /(src|href)\s*=\s*["']?(https?:)?\/\//i, 'no network references')
  t.notRegex(html, /<script/i, 'no scripts')
  t.notRegex(html, /<link/i, 'no external stylesheets')
  const srcs = [...html.matchAll(/<img[^>]*\ssrc="([^"]*)"/g)].map((m) => m[1])
  t.true(srcs.length > 0)
  for (const s of srcs) t.regex(s.slice(0, 30), /^data:image\/(svg\+xml|png);base64,/)
  t.regex(html, /font-family:[^;]*"Noto Sans CJK JP"/)
}

test.serial('the experiment report has every section, inline pictures only, the tables and the class names', async (t) => {
  const { experiment } = await fixtures()
  const html = await buildReport(experiment)
  for (const id of SECTIONS) t.regex(html, new RegExp(`<section id="${id}">`), `section #${id}`)
  checkSelfContained(t, html)
  const table = html.slice(html.indexOf('<table id="comparison-table">'))
  const body = table.slice(0, table.indexOf('</table>'))
  t.is((body.match(/<tr>/g) ?? []).length, 1 + 5, 'header + M0–M4')
  for (const m of ['M0', 'M1', 'M2', 'M3', 'M4']) t.true(body.includes(`<b>${m}</b>`))
  t.regex(html, /<table id="search-table">/)
  t.regex(html, /<table id="architecture-table">/)
  t.regex(html, /Successive halving/)
  t.regex(html, /class="pass">pass</)
  t.regex(html, /kana-native experiment --config .*experiment-config\.json/)
  t.regex(html, /engine CPU features \(native\.cpuFeatures\(\)\)/)
  t.true(html.includes(process.version))
  if (hasKmnist) for (const ch of ['お', 'き', 'す', 'つ', 'な', 'は', 'ま', 'や', 'れ', 'を']) t.true(html.includes(`<span class="classname">${ch}</span>`), `class name ${ch}`)
  const path = await writeReport(experiment)
  t.is(path, join(experiment, 'report.html'))
  t.log(`${path}: ${(statSync(path).size / 1024).toFixed(0)} KiB`)
})

test.serial('a single train run directory gets a report too', async (t) => {
  const { run } = await fixtures()
  const html = await buildReport(run)
  for (const id of RUN_SECTIONS) t.regex(html, new RegExp(`<section id="${id}">`), `section #${id}`)
  t.notRegex(html, /<section id="search">/)
  checkSelfContained(t, html)
  t.regex(html, /kana-native train --hidden 32 --epochs 2 --seed 1/)
  await t.throwsAsync(buildReport(join(run, 'nowhere')), { message: /no such directory/ })
  await t.throwsAsync(buildReport(tmpdir()), { message: /neither an experiment directory/ })
})

test.serial('in Chromium: the reports open from disk with every section visible, pictures decoded, Japanese set in Noto Sans CJK; screenshots saved', async (t) => {
  if (!existsSync(CHROMIUM)) {
    t.log(`SKIPPED: ${CHROMIUM} is absent — install Debian's chromium (apt-get install -y chromium) to run the browser check`)
    return t.pass()
  }
  const { experiment, run } = await fixtures()
  const ctx = (await launchChromium())!
  try {
    for (const [dir, sections] of [[experiment, SECTIONS], [run, RUN_SECTIONS]] as const) {
      const file = await writeReport(dir)
      const page = await ctx.newPage()
      const requests: string[] = []
      page.on('request', (r) => requests.push(r.url()))
      await page.goto(`file://${file}`, { waitUntil: 'load' })
      t.regex(await page.title(), /^kana-native (experiment|training run)$/)
      for (const id of sections) {
        const section = page.locator(`section#${id}`)
        await section.scrollIntoViewIfNeeded()
        t.true(await section.isVisible(), `#${id} visible`)
        const box = await section.boundingBox()
        t.true(!!box && box.height > 40 && box.width > 400, `#${id} has a size (${JSON.stringify(box)})`)
      }
      const images = await page.evaluate(() => Array.from(document.images).map((i) => ({ ok: i.complete && i.naturalWidth > 0, alt: i.alt })))
      t.true(images.length >= (dir === experiment ? 10 : 3), `${images.length} pictures`)
      for (const i of images) t.true(i.ok, `picture "${i.alt}" decoded`)
      t.deepEqual(requests.filter((u) => !u.startsWith('file:') && !u.startsWith('data:')), [], 'nothing fetched from the network')
      // which font actually drew a class name: Chromium's own answer (DevTools protocol)
      if (hasKmnist && existsSync('/usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc')) {
        const cdp = await ctx.newCDPSession(page)
        await cdp.send('DOM.enable')
        await cdp.send('CSS.enable')
        const { root } = await cdp.send('DOM.getDocument', { depth: -1 })
        const { nodeId } = await cdp.send('DOM.querySelector', { nodeId: root.nodeId, selector: 'span.classname' })
        const { fonts } = await cdp.send('CSS.getPlatformFontsForNode', { nodeId })
        t.log(`class name ${await page.locator('span.classname').first().textContent()} drawn with ${fonts.map((f: { familyName: string; glyphCount: number }) => `${f.familyName} (${f.glyphCount} glyphs)`).join(', ')}`)
        t.true(fonts.some((f: { familyName: string }) => /Noto Sans CJK/.test(f.familyName)), 'a Japanese class name is drawn with Noto Sans CJK')
        await cdp.detach()
      }
      const shot = join(dir, 'report-screenshot.png')
      await page.screenshot({ path: shot, fullPage: true })
      t.true(statSync(shot).size > 20_000, 'a screenshot with content')
      t.log(`screenshot: ${shot}`)
      await page.close()
    }
  } finally {
    await ctx.close()
  }
})
