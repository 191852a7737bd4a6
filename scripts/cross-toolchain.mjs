// The portable Linux x64 link: napi-rs's prebuilt gcc toolchain (crosstool-NG, gcc 4.8.5) whose
// sysroot holds glibc 2.17, so the addon binds only to glibc symbols ≤ 2.17 and loads on any
// glibc Linux since 2014 (CentOS 7, Ubuntu 14.04, Debian 8). Only the link changes: rustc compiles
// the same code, still without target-cpu=native (kernels are chosen at run time).
//
// The toolchain is the npm package @napi-rs/cross-toolchain-x64-target-x86_64, a devDependency
// under the alias napi-cross-toolchain-x86_64 (the alias keeps it clear of @napi-rs/cli's optional
// peer range, which names a version of it that was never published). It holds one .tar.xz,
// unpacked here once into target/ (git-ignored). Nothing is downloaded at build time.
// `napi build --use-napi-cross` would do the same, but with @napi-rs/cli 3.10 it asks npm for
// that missing version, so the environment it sets is reproduced here instead.
import { execFileSync } from 'node:child_process'
import { existsSync, mkdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs'
import { createRequire } from 'node:module'
import { join, resolve } from 'node:path'

const root = resolve(import.meta.dirname, '..')
const require = createRequire(join(root, 'package.json'))
export const PORTABLE_TRIPLE = 'x86_64-unknown-linux-gnu'
const PACKAGE = 'napi-cross-toolchain-x86_64'

/** Whether this host builds the portable binary: Linux x64 with the toolchain package installed. */
export function portableToolchainAvailable() {
  if (process.platform !== 'linux' || process.arch !== 'x64') return false
  try {
    require.resolve(`${PACKAGE}/package.json`)
    return true
  } catch {
    return false
  }
}

/** Unpacks the toolchain (once) and returns the environment that routes cargo's link through it. */
export function portableToolchainEnv(log = (msg) => console.error(msg)) {
  const pkg = require(`${PACKAGE}/package.json`)
  const archive = require(PACKAGE).toolchainPath
  const dir = join(root, 'target', 'napi-cross', `${PORTABLE_TRIPLE}-${pkg.version}`)
  const marker = join(dir, '.unpacked')
  if (!existsSync(marker)) {
    log(`kana-native: unpacking the glibc 2.17 toolchain (${pkg.name}@${pkg.version}) into ${dir}`)
    const tmp = `${dir}.tmp-${process.pid}`
    rmSync(tmp, { recursive: true, force: true })
    mkdirSync(tmp, { recursive: true })
    execFileSync('tar', ['-xJf', archive, '-C', tmp], { stdio: 'inherit' })
    rmSync(dir, { recursive: true, force: true })
    renameSync(tmp, dir)
    writeFileSync(marker, `${pkg.name}@${pkg.version}\n`)
  }
  const bin = (tool) => join(dir, 'bin', `${PORTABLE_TRIPLE}-${tool}`)
  const sysroot = join(dir, PORTABLE_TRIPLE, 'sysroot')
  const envTriple = PORTABLE_TRIPLE.toUpperCase().replace(/-/g, '_')
  return {
    [`CARGO_TARGET_${envTriple}_LINKER`]: bin('gcc'),
    // gcc 4.8 knows no -fuse-ld=lld, which rustc ≥ 1.90 passes for this target by default
    [`CARGO_TARGET_${envTriple}_RUSTFLAGS`]: '-Clinker-features=-lld',
    TARGET_CC: bin('gcc'),
    TARGET_CXX: bin('g++'),
    TARGET_AR: bin('ar'),
    TARGET_RANLIB: bin('ranlib'),
    TARGET_SYSROOT: sysroot,
    PATH: `${join(dir, 'bin')}:${process.env.PATH}`,
  }
}

/** The toolchain version, for messages (readFileSync keeps this usable without unpacking). */
export function portableToolchainVersion() {
  return JSON.parse(readFileSync(require.resolve(`${PACKAGE}/package.json`), 'utf8')).version
}
