'use strict'
// kana-native's entry point and native loader.
//
// The compiled addon is looked for, in order:
//   1. ./kana-native.<platform>.node next to this file (a local build: `npm run build`);
//   2. the per-platform package `kana-native-<platform>` (what a registry install brings, see npm/).
// <platform> is e.g. linux-x64-gnu, as @napi-rs/cli names it. Failing both, the error names the
// platform and every place tried.
const { existsSync } = require('node:fs')
const { join } = require('node:path')
const { currentPlatformTriple, missingNativeFunctions } = require('./platform.js')

function loadNativeBinding() {
  const triple = currentPlatformTriple()
  const local = join(__dirname, `kana-native.${triple}.node`)
  const pkg = `kana-native-${triple}`
  const failures = []
  if (existsSync(local)) {
    try {
      const binding = require(local)
      const missing = missingNativeFunctions(binding)
      if (missing.length === 0) return binding
      failures.push(`${local}: built from older sources than this JavaScript (it has no ${missing.join(', ')}; run \`npm run build\`)`)
    } catch (e) {
      failures.push(`${local}: ${e.message}`)
    }
  } else {
    failures.push(`${local}: not built (run \`npm run build\`)`)
  }
  try {
    const binding = require(pkg)
    const missing = missingNativeFunctions(binding)
    if (missing.length === 0) return binding
    failures.push(`${pkg}: another version than this package (it has no ${missing.join(', ')}; reinstall kana-native)`)
  } catch (e) {
    failures.push(`${pkg}: ${e.code === 'MODULE_NOT_FOUND' ? 'not installed' : e.message}`)
  }
  const err = new Error(
    `kana-native has no usable native addon for this platform (${triple}). Tried:\n  ${failures.join('\n  ')}\n` +
      'Build it from source with `npm run build` (needs Rust), or install on a supported platform.',
  )
  err.code = 'KANA_NO_NATIVE_BINDING'
  throw err
}

// The raw binding is published on `exports` before the TypeScript layer loads, because that layer
// (dist/engine/native.js) takes it from here.
const native = loadNativeBinding()
module.exports.native = native
// Written as `module.exports = require(…)` because that is the form Node's ES module loader
// (cjs-module-lexer) reads as a re-export: `import { MLP, train } from 'kana-native'` then finds
// every name of dist/index.js (with Object.assign it found none).
module.exports = require('./dist/index.js')
module.exports.native = native
