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

module.exports = { platformTriple, currentPlatformTriple }
