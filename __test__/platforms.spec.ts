// The logic that differs per platform, tested for every platform on this one: the addon's platform
// name, the quoting of printed commands, the interrupt signals, the rename retry Windows needs, and
// where the browser tests look for Chromium. (What cannot be run here is listed in the README.)
import test from 'ava'
import { spawnSync } from 'node:child_process'
import { copyFileSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { interruptSignals, shellWord } from '../src/cli/args'
import { RENAME_RETRY_MS, renameReplacing, renameReplacingSync, retryRename } from '../src/output/atomic'
import { chromiumCandidates, findChromium } from './helpers/chromium'
// eslint-disable-next-line @typescript-eslint/no-require-imports
const { platformTriple, currentPlatformTriple } = require('../platform.js') as { platformTriple: (p: { platform: string; arch: string; glibc?: string }) => string; currentPlatformTriple: () => string }

test('platform names are the ones @napi-rs/cli gives the npm/ packages and .node files', (t) => {
  t.is(platformTriple({ platform: 'linux', arch: 'x64', glibc: '2.36' }), 'linux-x64-gnu')
  t.is(platformTriple({ platform: 'linux', arch: 'arm64', glibc: '2.17' }), 'linux-arm64-gnu')
  t.is(platformTriple({ platform: 'linux', arch: 'x64' }), 'linux-x64-musl')
  t.is(platformTriple({ platform: 'darwin', arch: 'arm64' }), 'darwin-arm64')
  t.is(platformTriple({ platform: 'darwin', arch: 'x64' }), 'darwin-x64')
  t.is(platformTriple({ platform: 'win32', arch: 'x64' }), 'win32-x64-msvc') // was win32-x64: no such package
  if (process.platform === 'linux' && process.arch === 'x64') t.is(currentPlatformTriple(), 'linux-x64-gnu')
  // every target in package.json has its npm/ package under that name
  const { napi } = require('../package.json') as { napi: { targets: string[] } }
  const names: Record<string, string> = { 'x86_64-unknown-linux-gnu': 'linux-x64-gnu', 'aarch64-unknown-linux-gnu': 'linux-arm64-gnu', 'x86_64-apple-darwin': 'darwin-x64', 'aarch64-apple-darwin': 'darwin-arm64', 'x86_64-pc-windows-msvc': 'win32-x64-msvc' }
  t.deepEqual(napi.targets, Object.keys(names))
  for (const [triple, name] of Object.entries(names)) {
    const sub = require(`../npm/${name}/package.json`) as { name: string; os: string[]; cpu: string[]; main: string }
    t.is(sub.name, `kana-native-${name}`, triple)
    t.is(sub.main, `kana-native.${name}.node`)
    const [platform, arch] = name.split('-')
    t.deepEqual([sub.os, sub.cpu], [[platform], [arch]])
  }
})

test('printed commands quote paths for the shell of the platform', (t) => {
  t.is(shellWord('/home/me/runs/m3', 'linux'), '/home/me/runs/m3')
  t.is(shellWord("/home/me/my runs/it's", 'linux'), `'/home/me/my runs/it'\\''s'`)
  // the POSIX form reads back as the same string in sh
  for (const s of ["it's a run", 'a"b', 'x$HOME`y`', '']) {
    t.is(spawnSync('sh', ['-c', `printf %s ${shellWord(s, 'linux')}`], { encoding: 'utf8' }).stdout, s)
  }
  t.is(shellWord('C:\\Users\\me\\runs\\m3', 'win32'), 'C:\\Users\\me\\runs\\m3') // no quotes needed
  t.is(shellWord('C:\\Users\\Ana María\\runs\\m3', 'win32'), '"C:\\Users\\Ana María\\runs\\m3"') // cmd.exe has no single quotes
  t.is(shellWord('C:\\a "b"', 'win32'), '"C:\\a ""b"""')
  t.is(shellWord("C:\\it's", 'darwin'), `'C:\\it'\\''s'`)
})

test('Ctrl-Break (SIGBREAK) interrupts a run on Windows as Ctrl-C does', (t) => {
  t.deepEqual(interruptSignals('linux'), ['SIGINT', 'SIGTERM'])
  t.deepEqual(interruptSignals('darwin'), ['SIGINT', 'SIGTERM'])
  t.deepEqual(interruptSignals('win32'), ['SIGINT', 'SIGTERM', 'SIGBREAK'])
})

function flaky(code: string, failures: number) {
  const calls: string[] = []
  const rename = (from: string, to: string) => {
    calls.push(`${from}->${to}`)
    if (calls.length <= failures) throw Object.assign(new Error(`${code}: operation not permitted, rename`), { code })
  }
  return { calls, rename }
}

test('on Windows a rename refused because the target is open elsewhere is retried; elsewhere it fails at once', async (t) => {
  const win = flaky('EPERM', 2)
  await renameReplacing('a.tmp', 'a', 'win32', async (f, to) => win.rename(String(f), String(to)))
  t.is(win.calls.length, 3)
  const winSync = flaky('EBUSY', 3)
  renameReplacingSync('a.tmp', 'a', 'win32', (f, to) => winSync.rename(String(f), String(to)))
  t.is(winSync.calls.length, 4)
  const posix = flaky('EPERM', 1)
  await t.throwsAsync(renameReplacing('a.tmp', 'a', 'linux', async (f, to) => posix.rename(String(f), String(to))), { message: /EPERM/ })
  t.is(posix.calls.length, 1)
  const missing = flaky('ENOENT', 1)
  t.throws(() => renameReplacingSync('a.tmp', 'a', 'win32', (f, to) => missing.rename(String(f), String(to))), { message: /ENOENT/ })
  t.is(missing.calls.length, 1, 'a missing file is not a transient refusal')
  // it gives up after the last pause (about 4 s in all)
  const eperm = Object.assign(new Error('x'), { code: 'EACCES' })
  t.true(retryRename(eperm, RENAME_RETRY_MS.length - 1, 'win32'))
  t.false(retryRename(eperm, RENAME_RETRY_MS.length, 'win32'))
  const total = RENAME_RETRY_MS.reduce((a, b) => a + b, 0)
  t.true(total >= 3000 && total <= 6000, `${total} ms`)
})

test('the browser tests find Chromium, Chrome or Edge where each platform installs them', (t) => {
  t.is(chromiumCandidates('linux', {})[0], '/usr/bin/chromium')
  t.is(chromiumCandidates('linux', { CHROMIUM: '/opt/c/chrome' })[0], '/opt/c/chrome')
  const win = chromiumCandidates('win32', { PROGRAMFILES: 'C:\\Program Files', 'PROGRAMFILES(X86)': 'C:\\Program Files (x86)', LOCALAPPDATA: 'C:\\Users\\me\\AppData\\Local' })
  t.is(win[0], 'C:\\Program Files\\Google\\Chrome\\Application\\chrome.exe')
  t.true(win.includes('C:\\Users\\me\\AppData\\Local\\Google\\Chrome\\Application\\chrome.exe'))
  t.is(win.at(-1), 'C:\\Program Files (x86)\\Microsoft\\Edge\\Application\\msedge.exe')
  t.is(findChromium('win32', {}, (p) => p.endsWith('msedge.exe')), 'C:\\Program Files\\Microsoft\\Edge\\Application\\msedge.exe')
  t.is(findChromium('darwin', {}, () => false), '/Applications/Chromium.app/Contents/MacOS/Chromium')
})

test('the release workflow builds and tests every target of package.json, and publishes with provenance', (t) => {
  let yaml: { load(s: string): unknown }
  try {
    yaml = require('js-yaml') // in node_modules through @napi-rs/cli and ava; skipped if that changes
  } catch {
    t.log('js-yaml not installed: workflow not parsed')
    t.pass()
    return
  }
  const wf = yaml.load(readFileSync(join(__dirname, '..', '.github', 'workflows', 'release.yml'), 'utf8')) as any
  const { napi } = require('../package.json') as { napi: { targets: string[] } }
  const build = wf.jobs.build.strategy.matrix.include as { platform: string; target: string }[]
  t.deepEqual(build.map((b) => b.target), napi.targets)
  t.deepEqual((wf.jobs.test.strategy.matrix.include as { platform: string }[]).map((x) => x.platform), build.map((b) => b.platform))
  t.is(wf.jobs.publish.permissions['id-token'], 'write')
  const publish = (wf.jobs.publish.steps as { run?: string }[]).map((s) => s.run ?? '').join('\n')
  t.regex(publish, /package\.mjs --no-build --require-all/)
  t.regex(publish, /npm publish .*--provenance/)
})

// eslint-disable-next-line @typescript-eslint/no-require-imports
const { NATIVE_FUNCTIONS, missingNativeFunctions } = require('../platform.js') as { NATIVE_FUNCTIONS: string[]; missingNativeFunctions: (b: unknown) => string[] }

test('the loader\'s list of native functions is exactly what the built addon exports', (t) => {
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const { native } = require('../index.js') as { native: Record<string, unknown> }
  const exported = Object.keys(native).filter((k) => typeof native[k] === 'function').sort()
  t.deepEqual([...NATIVE_FUNCTIONS].sort(), exported)
  t.deepEqual(missingNativeFunctions(native), [])
  t.deepEqual(missingNativeFunctions({ ...native, augmentBatch: undefined, createPixels: 1 }), ['createPixels', 'augmentBatch'])
  t.deepEqual(missingNativeFunctions(null), NATIVE_FUNCTIONS)
})

test('an addon from older sources is refused by name when the package loads, never used silently', (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'kana-stale-'))
  try {
    for (const f of ['index.js', 'platform.js']) copyFileSync(join(__dirname, '..', f), join(dir, f))
    const pkg = join(dir, 'node_modules', `kana-native-${currentPlatformTriple()}`)
    mkdirSync(pkg, { recursive: true })
    const load = (functions: string[]) => {
      writeFileSync(join(pkg, 'index.js'), `module.exports = { ${functions.map((f) => `${f}() {}`).join(', ')} }\n`)
      return spawnSync(process.execPath, ['-e', "require('./index.js')"], { cwd: dir, encoding: 'utf8' })
    }
    const stale = load(NATIVE_FUNCTIONS.filter((f) => f !== 'augmentBatch'))
    t.not(stale.status, 0)
    t.regex(stale.stderr, /kana-native has no usable native addon/)
    t.regex(stale.stderr, new RegExp(`kana-native-${currentPlatformTriple()}: another version than this package \\(it has no augmentBatch; reinstall kana-native\\)`))
    // with every function the binding is taken, and loading goes on to the TypeScript layer (absent here)
    const whole = load(NATIVE_FUNCTIONS)
    t.not(whole.status, 0)
    t.regex(whole.stderr, /Cannot find module '\.\/dist\/index\.js'/)
    t.notRegex(whole.stderr, /no usable native addon/)
  } finally {
    rmSync(dir, { recursive: true, force: true })
  }
})
