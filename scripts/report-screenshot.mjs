#!/usr/bin/env node
// A PNG of a kana-native report as Debian's Chromium draws it (playwright-core, headless, a fresh
// profile, no network): the page from the top of one section, cut to a height.
//   node scripts/report-screenshot.mjs REPORT.html OUT.png [--from comparison] [--height 1500] [--width 1200] [--scale 1]
import { chromium } from 'playwright-core'
import { existsSync, mkdtempSync, rmSync, statSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join, resolve } from 'node:path'

const args = process.argv.slice(2)
const flag = (name, dflt) => {
  const i = args.indexOf(`--${name}`)
  return i >= 0 ? args.splice(i, 2)[1] : dflt
}
const from = flag('from', '')
const height = Number(flag('height', 1500))
const width = Number(flag('width', 1200))
const scale = Number(flag('scale', 1))
const [file, out] = args
if (!file || !out) {
  console.error('usage: node scripts/report-screenshot.mjs REPORT.html OUT.png [--from SECTION-ID] [--height PX] [--width PX] [--scale F]')
  process.exit(2)
}
const executablePath = process.env.CHROMIUM ?? '/usr/bin/chromium'
if (!existsSync(executablePath)) {
  console.error(`${executablePath} is absent: apt-get install -y chromium (or set CHROMIUM)`)
  process.exit(1)
}
const profile = mkdtempSync(join(tmpdir(), 'kana-chromium-'))
const ctx = await chromium.launchPersistentContext(profile, {
  executablePath, headless: true, viewport: { width, height }, deviceScaleFactor: scale,
  args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
})
try {
  const page = await ctx.newPage()
  await page.goto(`file://${resolve(file)}`, { waitUntil: 'load' })
  const y = from ? await page.evaluate((id) => document.getElementById(id)?.getBoundingClientRect().top + window.scrollY, from) : 0
  if (y === undefined || Number.isNaN(y)) throw new Error(`no section #${from} in ${file}`)
  const total = await page.evaluate(() => document.documentElement.scrollHeight)
  await page.screenshot({ path: out, fullPage: true, clip: { x: 0, y: Math.max(0, y - 8), width, height: Math.min(height, total - y + 8) } })
  console.log(`${out}: ${(statSync(out).size / 1024).toFixed(0)} KiB`)
} finally {
  await ctx.close()
  rmSync(profile, { recursive: true, force: true })
}
