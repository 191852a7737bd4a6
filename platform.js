'use strict'
// The platform name of the addon, as @napi-rs/cli names packages and files (kana-native-<name>,
// kana-native.<name>.node): linux-x64-gnu, linux-arm64-musl, darwin-arm64, win32-x64-msvc, …
// A pure function of its inputs, so every platform's answer is testable on any machine.
function platformTriple({ platform, arch, glibc }) {
  if (platform === 'linux') return `linux-${arch}-${glibc ? 'gnu' : 'musl'}`
  // Node on Windows is built with MSVC; napi-rs names those binaries -msvc
  if (platform === 'win32') return `win32-${arch}-msvc`
  return `${platform}-${arch}`
}

/** This process's platform name; on Linux, glibc or musl by whether Node reports a glibc version. */
function currentPlatformTriple() {
  const glibc = process.platform === 'linux' ? process.report?.getReport?.()?.header?.glibcVersionRuntime : undefined
  return platformTriple({ platform: process.platform, arch: process.arch, glibc })
}

/**
 * The native functions this JavaScript calls (src/engine/native.ts NativeBinding; a test keeps the
 * list equal to what the built addon exports, so a function added to the binding is added here).
 * An addon built from older Rust sources lacks some, and would otherwise fail
 * late or — for an option it does not know, such as `augment` before augmentBatch existed — not at
 * all: its old behaviour would run silently.
 */
const NATIVE_FUNCTIONS = [
  'createModel', 'freeModel', 'modelInfo', 'getWeights', 'setWeights', 'getNormState', 'setNormState',
  'getTrainingState', 'setTrainingState', 'cancel', 'progress', 'createPixels', 'writePixels',
  'createDataset', 'datasetInfo', 'fitEpoch', 'evaluate', 'predictProba', 'augmentBatch', 'cpuFeatures', 'debugPanic',
]

/** The names of NATIVE_FUNCTIONS that `binding` does not have as functions. */
function missingNativeFunctions(binding) {
  return NATIVE_FUNCTIONS.filter((f) => typeof binding?.[f] !== 'function')
}

module.exports = { platformTriple, currentPlatformTriple, NATIVE_FUNCTIONS, missingNativeFunctions }
