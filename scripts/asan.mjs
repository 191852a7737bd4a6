// `npm run test:asan`: AddressSanitizer over the Rust code, with what runs offline.
//   1. kana-core's tests, built with -Zsanitizer=address (nightly rustc; std itself is not
//      instrumented, as that needs rust-src for -Zbuild-std, but its allocations are intercepted);
//   2. the Node-API addon built the same way and loaded into an ordinary `node` with the C
//      compiler's ASan runtime preloaded (gcc's libasan, same ASan ABI), running the native-boundary
//      fuzzer (__test__/helpers/native-fuzz-child.js) and the replays of the inputs that once
//      crashed. A heap error anywhere in the addon or the engine ends the run with ASan's report.
// Needs a nightly toolchain (`rustup toolchain install nightly`) and, for part 2, libasan
// (Debian: gcc's libasan8). KANA_FUZZ_MS sets the fuzzing time (default 30 s), KANA_FUZZ_SEED the seed.
// Miri is not used: it is a rustup component that cannot be installed offline.
import { spawnSync } from 'node:child_process'
import { copyFileSync, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs'
import { join, resolve } from 'node:path'
import { ensureCargoSource } from './cargo-source.mjs'

const root = resolve(import.meta.dirname, '..')
const target = process.arch === 'arm64' ? 'aarch64-unknown-linux-gnu' : 'x86_64-unknown-linux-gnu'
const targetDir = join(root, 'target', 'asan')

function run(cmd, args, env = {}) {
  console.error(`$ ${cmd} ${args.join(' ')}`)
  const r = spawnSync(cmd, args, { stdio: 'inherit', cwd: root, env: { ...process.env, ...env } })
  if (r.status !== 0) {
    console.error(`asan: \`${cmd} ${args.join(' ')}\` failed${r.signal ? ` (${r.signal})` : ''}`)
    process.exit(r.status ?? 1)
  }
}

if (process.platform !== 'linux') {
  console.error('asan: AddressSanitizer runs here on Linux only')
  process.exit(1)
}
if (spawnSync('cargo', ['+nightly', '--version']).status !== 0) {
  console.error('asan: needs a nightly Rust toolchain (`rustup toolchain install nightly`): -Zsanitizer is unstable')
  process.exit(1)
}
await ensureCargoSource()
// --target keeps the sanitizer off build scripts and proc-macros
const rust = { RUSTFLAGS: '-Zsanitizer=address', RUSTDOCFLAGS: '-Zsanitizer=address', CARGO_TARGET_DIR: targetDir, ASAN_OPTIONS: 'detect_leaks=0:allocator_may_return_null=1' }
run('cargo', ['+nightly', 'test', '--release', '--target', target, '-p', 'kana-core'], rust)

const libasan = spawnSync('gcc', ['-print-file-name=libasan.so'], { encoding: 'utf8' }).stdout?.trim()
if (!libasan || !existsSync(libasan)) {
  console.error('asan: no libasan.so from gcc (Debian: libasan8): the addon is not checked')
  process.exit(1)
}
run('cargo', ['+nightly', 'build', '--release', '--target', target, '-p', 'kana-node'], rust)
const dir = join(targetDir, 'node')
mkdirSync(dir, { recursive: true })
const addon = join(dir, 'kana-native-asan.node')
copyFileSync(join(targetDir, target, 'release', 'libkana_node.so'), addon)
const binding = join(dir, 'binding.js')
writeFileSync(binding, `module.exports = { native: require(${JSON.stringify(addon)}) }\n`)

const child = join(root, '__test__', 'helpers', 'native-fuzz-child.js')
const node = { LD_PRELOAD: libasan, ASAN_OPTIONS: 'detect_leaks=0', KANA_FUZZ_BINDING: binding }
const spec = readFileSync(join(root, '__test__', 'native-fuzz.spec.ts'), 'utf8')
for (const [, input] of spec.matchAll(/`(\{fn:[^`]*)`/g)) run(process.execPath, ['--expose-gc', child], { ...node, KANA_FUZZ_REPLAY: input })
run(process.execPath, ['--expose-gc', child], { ...node, KANA_FUZZ_MS: process.env.KANA_FUZZ_MS ?? '30000', KANA_FUZZ_SEED: process.env.KANA_FUZZ_SEED ?? '20261127' })
console.error('asan: no errors')
