// Builds everything `npm install` (prepare) and `npm run build` need:
//   1. the native addon, by @napi-rs/cli (`napi build --platform --release`), after choosing where
//      cargo gets its crates (crates.io, or Debian's packages offline: see cargo-source.mjs);
//      it lands as ./kana-native.<platform>.node, which index.js loads first. On Linux x64 it is
//      linked against glibc 2.17 (cross-toolchain.mjs), so the addon the tests load is the one
//      `npm run package` ships; KANA_PORTABLE=0 links with the host's cc instead;
//   2. the TypeScript layer, src/ → dist/.
// `--native-only` / `--ts-only` do one half.
import { spawnSync } from 'node:child_process'
import { existsSync } from 'node:fs'
import { join, resolve } from 'node:path'
import { ensureCargoSource } from './cargo-source.mjs'
import { PORTABLE_TRIPLE, crossTargets, portableToolchainAvailable, portableToolchainEnv } from './cross-toolchain.mjs'

const root = resolve(import.meta.dirname, '..')
const argv = process.argv.slice(2)
const args = new Set(argv)
// --target TRIPLE: another target (the release workflow: aarch64-unknown-linux-gnu from Linux x64,
// or each macOS/Windows runner's own triple)
const target = argv.includes('--target') ? argv[argv.indexOf('--target') + 1] : undefined

function run(cmd, argv, env = process.env) {
  const r = spawnSync(cmd, argv, { stdio: 'inherit', cwd: root, env })
  if (r.status !== 0) {
    console.error(`kana-native: \`${cmd} ${argv.join(' ')}\` failed${r.error ? `: ${r.error.message}` : ''}`)
    process.exit(r.status ?? 1)
  }
}

const bin = (name) => join(root, 'node_modules', '.bin', name)

if (!args.has('--ts-only')) {
  if (!existsSync(join(root, 'crates'))) {
    console.error('kana-native: no Rust sources here (an installed package); nothing to build')
    process.exit(0)
  }
  await ensureCargoSource()
  const napiArgs = ['build', '--platform', '--release', '--manifest-path', 'crates/kana-node/Cargo.toml', '--package-json-path', 'package.json', '--output-dir', '.', '--no-js', '--no-dts-header']
  let env = process.env
  if (target && crossTargets().includes(target) && target !== PORTABLE_TRIPLE) {
    if (!portableToolchainAvailable(target)) throw new Error(`build: a ${target} toolchain runs on a Linux x64 host only`)
    napiArgs.push('--target', target)
    env = { ...process.env, ...portableToolchainEnv(target) }
  } else if (target && target !== PORTABLE_TRIPLE) {
    napiArgs.push('--target', target)
  } else if (process.env.KANA_PORTABLE !== '0' && portableToolchainAvailable()) {
    // an explicit --target keeps these artifacts (target/x86_64-unknown-linux-gnu/) apart from
    // `cargo test`'s host-linked ones (target/release/)
    napiArgs.push('--target', PORTABLE_TRIPLE)
    env = { ...process.env, ...portableToolchainEnv() }
  } else if (process.platform === 'linux' && process.arch === 'x64' && process.env.KANA_PORTABLE !== '0') {
    console.error('kana-native: the glibc 2.17 toolchain (devDependency napi-cross-toolchain-x86_64) is not installed; linking with the host cc, so the addon needs this machine\'s glibc')
  }
  run(bin('napi'), napiArgs, env)
}
if (!args.has('--native-only')) {
  run(bin('tsc'), ['-p', 'tsconfig.json'])
}
