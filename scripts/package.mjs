// `npm run package`: the installable tarballs, in git-ignored artifacts/.
//   artifacts/kana-native-<version>.tgz                 JavaScript, types, CLI; no Rust, no scripts
//   artifacts/kana-native-<platform>-<version>.tgz      one per platform binary at hand (npm/<platform>)
// The main package's optionalDependencies name every platform package of package.json's
// napi.targets at the same version, as `napi prepublish` writes them, so npm installs exactly the
// one whose os/cpu/libc match the user's machine.
//
// Binaries are taken from ./kana-native.<platform>.node (this machine's build, made first by
// scripts/build.mjs) or from artifacts/bindings/ (the release workflow puts every platform's
// there). Options: --no-build (use what is built), --require-all (fail unless every target's
// binary is present: the release workflow's publish job), --out DIR (instead of artifacts/).
import { execFileSync, spawnSync } from 'node:child_process'
import { copyFileSync, cpSync, existsSync, mkdirSync, readFileSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs'
import { join, resolve } from 'node:path'
import { glibcNeeds, compareVersions } from './glibc-version.mjs'

const root = resolve(import.meta.dirname, '..')
const argv = process.argv.slice(2)
const args = new Set(argv)
const outAt = argv.indexOf('--out')
const out = outAt >= 0 ? resolve(argv[outAt + 1]) : join(root, 'artifacts')
const stage = join(out, '.stage')
const GLIBC_MAX = '2.17'

const pkg = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8'))
const { binaryName, packageName, targets } = pkg.napi

// Rust target triple → napi-rs platform name (the npm/ directory and the .node file's infix)
function platformOf(triple) {
  const [arch, , os, abi] = triple.split('-')
  const cpu = { x86_64: 'x64', aarch64: 'arm64' }[arch]
  const platform = { linux: 'linux', apple: 'darwin', windows: 'win32' }[os] ?? triple.split('-')[1]
  if (!cpu) throw new Error(`package: no npm cpu name for ${triple}`)
  if (triple.includes('-apple-')) return `darwin-${cpu}`
  if (platform === 'win32' || triple.includes('-windows-')) return `win32-${cpu}-${abi}`
  return `linux-${cpu}-${abi}`
}

function run(cmd, argv, opts = {}) {
  const r = spawnSync(cmd, argv, { stdio: 'inherit', cwd: root, ...opts })
  if (r.status !== 0) throw new Error(`package: \`${cmd} ${argv.join(' ')}\` failed${r.error ? `: ${r.error.message}` : ''}`)
}

function npmPack(dir) {
  // --ignore-scripts: packing must not run the source package's prepare/prepack
  const json = execFileSync('npm', ['pack', '--json', '--ignore-scripts', '--pack-destination', out], { cwd: dir, encoding: 'utf8' })
  const [info] = JSON.parse(json)
  return info
}

/** Debug info out, with the target's own strip (the glibc toolchain's, else the host's); a strip
 * that cannot read the file leaves it as it is, with a warning, rather than failing the release. */
function stripDebug(triple, file) {
  const napiCross = join(root, 'target', 'napi-cross')
  const dir = existsSync(napiCross) ? readdirSync(napiCross).find((d) => d.startsWith(`${triple}-`) && existsSync(join(napiCross, d, 'bin', `${triple}-strip`))) : undefined
  const strip = dir ? join(napiCross, dir, 'bin', `${triple}-strip`) : 'strip'
  const r = spawnSync(strip, ['--strip-debug', file], { encoding: 'utf8' })
  if (r.status !== 0) console.error(`kana-native: ${strip} could not strip ${file} (${(r.stderr || r.error?.message || '').trim()}); shipping it with debug info`)
}

if (!args.has('--no-build')) run(process.execPath, [join(root, 'scripts', 'build.mjs'), '--native-only'])

rmSync(stage, { recursive: true, force: true })
mkdirSync(stage, { recursive: true })
for (const f of readdirSync(out)) if (f.endsWith('.tgz')) rmSync(join(out, f))

// --- platform packages
const platforms = targets.map(platformOf)
const packed = []
const missing = []
for (const platform of platforms) {
  const file = `${binaryName}.${platform}.node`
  const found = [join(root, file), join(root, 'artifacts', 'bindings', file)].find(existsSync)
  if (!found) {
    missing.push(platform)
    continue
  }
  const dir = join(root, 'npm', platform)
  const sub = JSON.parse(readFileSync(join(dir, 'package.json'), 'utf8'))
  if (sub.name !== `${packageName}-${platform}`) throw new Error(`package: npm/${platform}/package.json is named ${sub.name}, expected ${packageName}-${platform}`)
  if (sub.version !== pkg.version) throw new Error(`package: npm/${platform} is at version ${sub.version}, package.json at ${pkg.version}; they must match`)
  if (platform.startsWith('linux-') && platform.endsWith('-gnu')) {
    const { max } = glibcNeeds(readFileSync(found))
    if (max && compareVersions(max, GLIBC_MAX) > 0) {
      throw new Error(`package: ${found} needs GLIBC_${max} (> ${GLIBC_MAX}): it was linked with the host's glibc, not the portable toolchain (see scripts/cross-toolchain.mjs); refusing to ship it`)
    }
  }
  const dest = join(stage, platform)
  mkdirSync(dest)
  for (const f of ['package.json', 'README.md']) copyFileSync(join(dir, f), join(dest, f))
  copyFileSync(found, join(dest, file))
  // debug info (profile.release has debug = 1, for local backtraces) would triple the download;
  // symbols stay, so a panic's message still names the function
  if (platform.startsWith('linux-')) stripDebug(targets[platforms.indexOf(platform)], join(dest, file))
  packed.push(npmPack(dest))
}
if (missing.length && args.has('--require-all')) throw new Error(`package: no binary for ${missing.join(', ')} (looked in ./ and artifacts/bindings/)`)

// --- the main package: what `files` names, with a package.json that runs nothing on install
const main = join(stage, 'kana-native')
mkdirSync(main)
for (const f of pkg.files) {
  if (f === 'dist') continue
  cpSync(join(root, f), join(main, f), { recursive: true })
}
for (const f of ['README.md', 'LICENSE']) if (existsSync(join(root, f))) copyFileSync(join(root, f), join(main, f))
// a clean TypeScript build, so files a moved or deleted source left in dist/ are not shipped;
// no source maps (they would point at src/, which is not shipped)
run(join(root, 'node_modules', '.bin', 'tsc'), ['-p', 'tsconfig.json', '--outDir', join(main, 'dist'), '--sourceMap', 'false'])
const { scripts, devDependencies, ava, ...published } = pkg
published.optionalDependencies = Object.fromEntries(platforms.map((p) => [`${packageName}-${p}`, pkg.version]))
writeFileSync(join(main, 'package.json'), `${JSON.stringify(published, null, 2)}\n`)
packed.unshift(npmPack(main))
rmSync(stage, { recursive: true, force: true })

for (const p of packed) {
  const size = statSync(join(out, p.filename)).size
  console.error(`kana-native: ${join(out, p.filename)}  ${(size / 1e6).toFixed(2)} MB packed, ${(p.unpackedSize / 1e6).toFixed(2)} MB unpacked, ${p.entryCount} files`)
}
if (missing.length) console.error(`kana-native: no binary here for ${missing.join(', ')} (built by the release workflow on their own runners)`)
