// `kana-native report`: one self-contained HTML file, for an experiment directory and for a single
// train run directory — its structure, and how it looks in a real browser (Debian's Chromium
// through playwright-core; skipped with a message when /usr/bin/chromium is absent).
import test from 'ava'
import { existsSync, mkdtempSync, readFileSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join, relative } from 'node:path'
import { runExperiment } from '../src/experiment/experiment'
import { buildReport, writeReport } from '../src/output/report'
import { train } from '../src/training/train'
import { CHROMIUM, classmap, hasKmnist, launchChromium, miniConfig, miniData } from './experiment-fixtures'

const SECTIONS = ['data', 'comparison', 'curves', 'confusion', 'search', 'noise', 'agreement', 'reproduce', 'machine']
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
  t.is((body.match(/<tr>/g) ?? []).length, 1 + 6, 'header + M0–M5')
  for (const m of ['M0', 'M1', 'M2', 'M3', 'M4', 'M5']) t.true(body.includes(`<b>${m}</b>`))
  t.regex(html, /<table id="search-table">/)
  t.regex(html, /<table id="architecture-table">/)
  t.regex(html, /<table id="m5-table">/)
  // the noise table: a row per model, the clean accuracy first (the comparison table's), three kinds × three levels
  const exp = JSON.parse(readFileSync(join(experiment, 'experiment.json'), 'utf8'))
  const noise = html.slice(html.indexOf('<table id="noise-table">'))
  const nbody = noise.slice(0, noise.indexOf('</table>'))
  t.regex(nbody, /<th>model<\/th><th>clean<\/th><th>gaussian 25\.5<\/th><th>gaussian 51<\/th><th>gaussian 76\.5<\/th><th>salt-pepper 0\.05<\/th>/)
  t.is((nbody.match(/<tr>/g) ?? []).length, 1 + 6)
  for (const m of exp.models) t.true(nbody.includes(`<td><b>${m.id}</b>${m.id === 'M2' ? " <span class=\"note\">(the reference's weights, evaluated by the engine)</span>" : ''}</td><td class="num">${(m.id === 'M2' ? exp.noise.models[2].byKind[0].rows[0].accuracy * 100 : m.test.accuracy * 100).toFixed(2)}%</td>`), `${m.id}'s noise row starts with its clean accuracy`)
  for (const k of ['gaussian', 'salt-pepper', 'occlusion']) t.true(html.includes(`alt="test accuracy under ${k} noise, one line per model"`), `${k} chart`)
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

// ---------------------------------------------------------------------------------------------
// Crafted experiment directories (issue K): the report is documented as script-free, so no value
// read from the directory may reach the HTML unescaped, and it reads nothing outside the directory.

const HOSTILE = ['<img src=x onerror=alert(1)>', '"><script>alert(1)</script>', "'><svg onload=alert(1)>", '</code></pre><iframe src=javascript:alert(1)>']
const RAW = /<img src=x|<script|<svg onload|<iframe/i

/** Every path to a leaf of a JSON value. */
function leaves(v: unknown, prefix: (string | number)[] = [], out: (string | number)[][] = []): (string | number)[][] {
  if (v === null || typeof v !== 'object') { out.push(prefix); return out }
  for (const [k, x] of Object.entries(v)) leaves(x, [...prefix, Array.isArray(v) ? Number(k) : k], out)
  return out
}
function setAt(v: any, path: (string | number)[], x: unknown): void {
  for (const k of path.slice(0, -1)) v = v[k]
  v[path[path.length - 1]] = x
}

test.serial('hostile strings in any field of experiment.json, trials.json or a model\'s metrics.json never reach the report unescaped', async (t) => {
  const { experiment } = await fixtures()
  const fc = (await import('fast-check')).default
  const files = ['experiment.json', 'search/trials.json', 'architecture/trials.json', 'M5-candidates/trials.json', 'models/M1/metrics.json'].filter((f) => existsSync(join(experiment, f)))
  const originals = Object.fromEntries(files.map((f) => [f, readFileSync(join(experiment, f), 'utf8')]))
  const all = files.flatMap((f) => leaves(JSON.parse(originals[f])).map((p) => [f, p] as const))
  const counts: Record<string, number> = {}
  try {
    await fc.assert(
      fc.asyncProperty(fc.nat(), fc.constantFrom(...HOSTILE), fc.boolean(), async (which, s, allOfFile) => {
        const [file, path] = all[which % all.length]
        const v = JSON.parse(originals[file])
        // one field, or every leaf of the file at once
        for (const p of allOfFile ? leaves(v) : [path]) setAt(v, p, s)
        writeFileSync(join(experiment, file), JSON.stringify(v))
        let outcome = 'built'
        try {
          const html = await buildReport(experiment)
          const m = RAW.exec(html)
          if (m) throw new Error(`${file} ${allOfFile ? '(every field)' : JSON.stringify(path)} = ${s}: unescaped at ${JSON.stringify(html.slice(Math.max(0, m.index - 80), m.index + 40))}`)
        } catch (e) {
          if ((e as Error).message.includes('unescaped')) throw e
          outcome = `refused (${(e as Error).name})`
        } finally {
          writeFileSync(join(experiment, file), originals[file])
        }
        counts[outcome] = (counts[outcome] ?? 0) + 1
      }),
      { seed: 20261201, numRuns: 300 },
    )
  } finally {
    for (const f of files) writeFileSync(join(experiment, f), originals[f])
  }
  t.log(`300 crafted directories (${all.length} fields): ${JSON.stringify(counts)}`)
  t.true((counts.built ?? 0) > 100)
})

test.serial('report DIR reads only inside DIR: models[].dir leaving it, absolute, or through a link is refused', async (t) => {
  const { experiment } = await fixtures()
  const original = readFileSync(join(experiment, 'experiment.json'), 'utf8')
  const outside = mkdtempSync(join(tmpdir(), 'kana-report-outside-'))
  writeFileSync(join(outside, 'curves.svg'), '<svg xmlns="http://www.w3.org/2000/svg"><text>SECRET-OUTSIDE</text></svg>')
  writeFileSync(join(outside, 'metrics.json'), '{"test": {"perClass": []}}')
  symlinkSync(outside, join(experiment, 'models', 'link'))
  try {
    for (const dir of [relative(experiment, outside), outside, '../../../../../../..' + outside, 'models/link', 'models/M1/../../..']) {
      const exp = JSON.parse(original)
      exp.models[0].dir = dir
      writeFileSync(join(experiment, 'experiment.json'), JSON.stringify(exp))
      const e = await t.throwsAsync(buildReport(experiment), undefined, dir)
      t.regex(e!.message, /leaves the directory|leads outside the directory/, dir)
      t.notRegex(e!.message, /SECRET/)
    }
  } finally {
    writeFileSync(join(experiment, 'experiment.json'), original)
    rmSync(join(experiment, 'models', 'link'), { force: true })
    rmSync(outside, { recursive: true, force: true })
  }
  const html = await buildReport(experiment)
  t.false(html.includes(Buffer.from('SECRET-OUTSIDE').toString('base64').slice(0, 12)))
})

test.serial('a picture that is a symbolic link to a file outside the directory is refused', async (t) => {
  const { run } = await fixtures()
  const outside = mkdtempSync(join(tmpdir(), 'kana-report-outside-'))
  writeFileSync(join(outside, 'secret.svg'), '<svg xmlns="http://www.w3.org/2000/svg"><text>SECRET</text></svg>')
  const curves = join(run, 'curves.svg')
  const saved = readFileSync(curves)
  rmSync(curves)
  symlinkSync(join(outside, 'secret.svg'), curves)
  try {
    const e = await t.throwsAsync(buildReport(run))
    t.regex(e!.message, /curves\.svg.*leads outside the directory/)
  } finally {
    rmSync(curves)
    writeFileSync(curves, saved)
    rmSync(outside, { recursive: true, force: true })
  }
})
