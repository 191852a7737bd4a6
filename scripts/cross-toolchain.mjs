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
import { createHash } from 'node:crypto'

const root = resolve(import.meta.dirname, '..')
const require = createRequire(join(root, 'package.json'))
export const PORTABLE_TRIPLE = 'x86_64-unknown-linux-gnu'

// Per target: the npm package holding the toolchain (crosstool-NG, glibc 2.17 sysroot) for a
// Linux x64 host. x86_64 is a devDependency (every build here uses it); aarch64 is needed only by
// the release workflow's cross build, so it is fetched on first use with `npm pack` from the
// registry and checked against the integrity recorded here.
const TOOLCHAINS = {
  'x86_64-unknown-linux-gnu': { installed: 'napi-cross-toolchain-x86_64' },
  'aarch64-unknown-linux-gnu': {
    spec: '@napi-rs/cross-toolchain-x64-target-aarch64@1.0.3',
    integrity: 'sha512-EMFcy/ahFsmCY3BI1tMC3wRUYZ+cDuILg7nP1micaKXW1tO1+RvUB1CC6QYe+cv2W4Tuz9wr3qcFExWyjgWf2w==',
  },
}

export function crossTargets() {
  return Object.keys(TOOLCHAINS)
}

/** Whether this host builds the portable binary: Linux x64 with the toolchain package installed. */
export function portableToolchainAvailable(triple = PORTABLE_TRIPLE) {
  if (process.platform !== 'linux' || process.arch !== 'x64') return false
  const t = TOOLCHAINS[triple]
  if (!t) return false
  if (!t.installed) return true // fetched on demand
  try {
    require.resolve(`${t.installed}/package.json`)
    return true
  } catch {
    return false
  }
}

/** The toolchain's .tar.xz and a name for it: from node_modules, or fetched once into target/. */
function toolchainArchive(triple, log) {
  const t = TOOLCHAINS[triple]
  if (t.installed) {
    const pkg = require(`${t.installed}/package.json`)
    return { archive: require(t.installed).toolchainPath, id: `${pkg.name}@${pkg.version}`, version: pkg.version }
  }
  const version = t.spec.slice(t.spec.lastIndexOf('@') + 1)
  const cache = join(root, 'target', 'napi-cross', 'downloads')
  const tgz = join(cache, `${t.spec.slice(1, t.spec.lastIndexOf('@')).replace('/', '-')}-${version}.tgz`)
  if (!existsSync(tgz)) {
    log(`kana-native: fetching ${t.spec} (the ${triple} link toolchain) from the npm registry`)
    mkdirSync(cache, { recursive: true })
    execFileSync('npm', ['pack', t.spec, '--pack-destination', cache], { stdio: ['ignore', 'ignore', 'inherit'] })
  }
  const sri = `sha512-${createHash('sha512').update(readFileSync(tgz)).digest('base64')}`
  if (sri !== t.integrity) {
    rmSync(tgz)
    throw new Error(`${tgz}: integrity ${sri} is not the recorded ${t.integrity}; removed`)
  }
  const unpacked = join(cache, `${triple}-${version}`)
  if (!existsSync(join(unpacked, 'package', 'package.json'))) {
    mkdirSync(unpacked, { recursive: true })
    execFileSync('tar', ['-xzf', tgz, '-C', unpacked])
  }
  return { archive: join(unpacked, 'package', `${triple}.tar.xz`), id: t.spec, version }
}

/** Unpacks the toolchain (once) and returns the environment that routes cargo's link through it. */
export function portableToolchainEnv(triple = PORTABLE_TRIPLE, log = (msg) => console.error(msg)) {
  const { archive, id, version } = toolchainArchive(triple, log)
  const dir = join(root, 'target', 'napi-cross', `${triple}-${version}`)
  const marker = join(dir, '.unpacked')
  if (!existsSync(marker)) {
    log(`kana-native: unpacking the glibc 2.17 toolchain (${id}) into ${dir}`)
    const tmp = `${dir}.tmp-${process.pid}`
    rmSync(tmp, { recursive: true, force: true })
    mkdirSync(tmp, { recursive: true })
    execFileSync('tar', ['-xJf', archive, '-C', tmp], { stdio: 'inherit' })
    rmSync(dir, { recursive: true, force: true })
    renameSync(tmp, dir)
    writeFileSync(marker, `${id}\n`)
  }
  const bin = (tool) => join(dir, 'bin', `${triple}-${tool}`)
  const envTriple = triple.toUpperCase().replace(/-/g, '_')
  const env = {
    [`CARGO_TARGET_${envTriple}_LINKER`]: bin('gcc'),
    TARGET_CC: bin('gcc'),
    TARGET_CXX: bin('g++'),
    TARGET_AR: bin('ar'),
    TARGET_RANLIB: bin('ranlib'),
    TARGET_SYSROOT: join(dir, triple, 'sysroot'),
    PATH: `${join(dir, 'bin')}:${process.env.PATH}`,
  }
  // gcc 4.8 knows no -fuse-ld=lld, which rustc ≥ 1.90 passes for x86_64-unknown-linux-gnu by default
  if (triple === 'x86_64-unknown-linux-gnu') env[`CARGO_TARGET_${envTriple}_RUSTFLAGS`] = '-Clinker-features=-lld'
  return env
}
