// Builds everything `npm install` (prepare) and `npm run build` need:
//   1. the native addon, by @napi-rs/cli (`napi build --platform --release`), after choosing where
//      cargo gets its crates (crates.io, or Debian's packages offline: see cargo-source.mjs);
//      it lands as ./kana-native.<platform>.node, which index.js loads first;
//   2. the TypeScript layer, src/ → dist/.
// `--native-only` / `--ts-only` do one half.
import { spawnSync } from 'node:child_process'
import { existsSync } from 'node:fs'
import { join, resolve } from 'node:path'
import { ensureCargoSource } from './cargo-source.mjs'

const root = resolve(import.meta.dirname, '..')
const args = new Set(process.argv.slice(2))

function run(cmd, argv) {
  const r = spawnSync(cmd, argv, { stdio: 'inherit', cwd: root })
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
  run(bin('napi'), ['build', '--platform', '--release', '--manifest-path', 'crates/kana-node/Cargo.toml', '--package-json-path', 'package.json', '--output-dir', '.', '--no-js', '--no-dts-header'])
}
if (!args.has('--native-only')) {
  run(bin('tsc'), ['-p', 'tsconfig.json'])
}
