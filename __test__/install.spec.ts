// kana-native as a user installs it from the registry: the tarballs `npm run package` makes,
// installed into a fresh project whose PATH has no cargo or rustc, with nothing fetched but those
// tarballs and the npm registry (the main package's own dependencies). Then the CLI, CommonJS,
// ES modules and TypeScript against the installed package only.
//
// The tarballs are packed here, from this checkout's build (scripts/package.mjs --no-build into a
// temporary folder), so they are never older than the code under test.
import test from 'ava'
import { spawnSync, type SpawnSyncOptions } from 'node:child_process'
import { existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, symlinkSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { dirname, join } from 'node:path'
import { npy } from './helpers/npy'

const root = join(__dirname, '..')
const pkg = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8'))
const kmnist = join(root, '..', 'shared', 'data', 'kmnist')
const hasData = existsSync(join(kmnist, 'X_images.npy'))
const linuxX64 = process.platform === 'linux' && process.arch === 'x64'
const platformPkg = 'kana-native-linux-x64-gnu'

function sh(cmd: string, args: string[], opts: SpawnSyncOptions = {}) {
  const r = spawnSync(cmd, args, { encoding: 'utf8', maxBuffer: 64 << 20, ...opts })
  return { code: r.status, stdout: String(r.stdout ?? ''), stderr: String(r.stderr ?? ''), error: r.error }
}

/** A user's environment: node and npm on PATH, no Rust toolchain, no npm_* variables of `npm test`. */
function userEnv(home: string): NodeJS.ProcessEnv {
  const bin = join(home, 'bin')
  mkdirSync(bin, { recursive: true })
  const nodeDir = dirname(process.execPath)
  for (const tool of ['node', 'npm', 'npx']) {
    if (!existsSync(join(bin, tool))) symlinkSync(join(nodeDir, tool), join(bin, tool))
  }
  const env: NodeJS.ProcessEnv = {}
  for (const [k, v] of Object.entries(process.env)) {
    if (/^(npm_|CARGO|RUSTUP|RUSTC|RUSTFLAGS|NODE_OPTIONS$|NODE_PATH$|INIT_CWD$)/i.test(k)) continue
    env[k] = v
  }
  // the npm cache stays the user's (~/.npm), so registry packages come from it when it has them
  env.PATH = `${bin}:/usr/bin:/bin`
  env.NO_COLOR = '1'
  return env
}

/** The first 600 of every 13th real KMNIST image (all 10 classes) as .npy files in `dir`. */
function writeSlice(dir: string, n = 600, stride = 13) {
  const read = (f: string) => {
    const buf = readFileSync(join(kmnist, f))
    const headerLen = buf.readUInt16LE(8)
    return { header: buf.toString('latin1', 10, 10 + headerLen), data: buf.subarray(10 + headerLen) }
  }
  const x = read('X_images.npy')
  const y = read('y_images.npy')
  if (!x.header.includes("'|u1'") || !y.header.includes("'<i8'")) throw new Error(`unexpected KMNIST dtypes: ${x.header} / ${y.header}`)
  const images = new Uint8Array(n * 784)
  const labels = new BigInt64Array(n)
  const allLabels = new BigInt64Array(y.data.buffer.slice(y.data.byteOffset, y.data.byteOffset + y.data.byteLength))
  for (let i = 0; i < n; i++) {
    images.set(x.data.subarray(i * stride * 784, (i * stride + 1) * 784), i * 784)
    labels[i] = allLabels[i * stride]
  }
  writeFileSync(join(dir, 'X_images.npy'), npy('|u1', [n, 784], images))
  writeFileSync(join(dir, 'y_images.npy'), npy('<i8', [n], labels))
  return new Set(Array.from(labels, Number)).size
}

const installTest = linuxX64 && hasData ? test.serial : test.skip

installTest('the packaged tarballs install without Rust and train, predict, require, import and type-check', (t) => {
  const t0 = Date.now()
  const work = mkdtempSync(join(tmpdir(), 'kana-install-'))
  const artifacts = join(work, 'artifacts')

  // 1. pack, from this checkout's build
  const p = sh(process.execPath, [join(root, 'scripts', 'package.mjs'), '--no-build', '--out', artifacts], { cwd: root })
  t.is(p.code, 0, p.stderr)
  const mainTgz = join(artifacts, `kana-native-${pkg.version}.tgz`)
  const platTgz = join(artifacts, `${platformPkg}-${pkg.version}.tgz`)
  t.true(existsSync(mainTgz) && existsSync(platTgz), readdirSync(artifacts).join(', '))

  // the main tarball: JS, types, CLI; no Rust sources, no TypeScript sources, no scripts to run
  const list = sh('tar', ['-tzf', mainTgz]).stdout.trim().split('\n')
  t.true(list.includes('package/index.js') && list.includes('package/index.d.ts') && list.includes('package/bin/kana-native.js') && list.includes('package/dist/index.js'))
  t.deepEqual(list.filter((f) => /\.(rs|toml|node|map)$|^package\/(src|crates|scripts|npm|__test__)\//.test(f) || (f.endsWith('.ts') && !f.endsWith('.d.ts'))), [])
  const published = JSON.parse(sh('tar', ['-xzOf', mainTgz, 'package/package.json']).stdout)
  t.is(published.scripts, undefined, 'no lifecycle scripts (prepare would try to build with cargo)')
  t.is(published.devDependencies, undefined)
  t.deepEqual(published.optionalDependencies, {
    'kana-native-linux-x64-gnu': pkg.version,
    'kana-native-linux-arm64-gnu': pkg.version,
    'kana-native-darwin-x64': pkg.version,
    'kana-native-darwin-arm64': pkg.version,
    'kana-native-win32-x64-msvc': pkg.version,
  })
  t.deepEqual(sh('tar', ['-tzf', platTgz]).stdout.trim().split('\n').sort(), ['package/README.md', 'package/kana-native.linux-x64-gnu.node', 'package/package.json'])

  // 2. a fresh project, a user's PATH without Rust
  const project = join(work, 'project')
  mkdirSync(project)
  const env = userEnv(work)
  t.not(sh('sh', ['-c', 'command -v cargo || command -v rustc || command -v rustup'], { env }).code, 0, 'no Rust toolchain on the PATH')
  writeFileSync(join(project, 'package.json'), JSON.stringify({ name: 'kana-install-check', version: '1.0.0', private: true }))
  const install = sh('npm', ['install', '--no-audit', '--no-fund', '--prefer-offline', mainTgz, platTgz], { cwd: project, env })
  t.is(install.code, 0, install.stderr)
  // npm ≥ 11 lists dependencies whose install scripts it skipped; kana-native must not be one
  t.notRegex(install.stderr, /install-scripts[^\n]*kana-native/)
  const nm = join(project, 'node_modules')
  t.true(existsSync(join(nm, platformPkg, 'kana-native.linux-x64-gnu.node')))
  for (const other of ['kana-native-darwin-x64', 'kana-native-darwin-arm64', 'kana-native-win32-x64-msvc', 'kana-native-linux-arm64-gnu']) {
    t.false(existsSync(join(nm, other)), `${other} is not installed here`)
  }
  // nothing in the installed tree has an install script: nothing was built or downloaded on install
  const lock = JSON.parse(readFileSync(join(project, 'package-lock.json'), 'utf8'))
  t.deepEqual(Object.entries(lock.packages).filter(([, v]) => (v as { hasInstallScript?: boolean }).hasInstallScript).map(([k]) => k), [])
  // the installed binary is the portable one
  const glibc = sh(process.execPath, [join(root, 'scripts', 'glibc-version.mjs'), join(nm, platformPkg, 'kana-native.linux-x64-gnu.node')])
  t.is(glibc.code, 0, glibc.stderr)
  const [maj, min] = glibc.stdout.trim().replace('GLIBC_', '').split('.').map(Number)
  t.true(maj === 2 && min <= 17, `installed addon needs ${glibc.stdout.trim()}`)

  // 3. the CLI through npx (--no: never fetch), on 600 real KMNIST images, 2 epochs
  t.is(writeSlice(project), 10)
  const npx = (args: string[]) => sh('npx', ['--no', 'kana-native', ...args], { cwd: project, env })
  const train = npx(['train', '--epochs', '2', '--hidden', '32', '--seed', '7', '--threads', '2', '--out', 'run'])
  t.is(train.code, 0, train.stderr)
  t.regex(train.stderr, /epoch 2\/2 /)
  const metrics = JSON.parse(readFileSync(join(project, 'run', 'metrics.json'), 'utf8'))
  t.true(metrics.test.accuracy > 0.3, `test accuracy ${metrics.test.accuracy} on 120 images after 2 epochs`)
  const predict = npx(['predict', '--model', 'run/model.safetensors', '--images', 'X_images.npy', '--out', 'pred.csv', '--argmax'])
  t.is(predict.code, 0, predict.stderr)
  const rows = readFileSync(join(project, 'pred.csv'), 'utf8').trim().split('\n')
  t.is(rows.length, 601)
  t.is(rows[0], [...Array.from({ length: 10 }, (_, k) => `Clase_${k}`), 'argmax'].join(','))
  for (const row of rows.slice(1)) {
    const v = row.split(',').map(Number)
    t.true(Math.abs(v.slice(0, 10).reduce((a, b) => a + b, 0) - 1) <= 1e-6)
  }

  // the job queue's BullMQ is an optional peer dependency: not installed, and asked for by name
  t.false(existsSync(join(nm, 'bullmq')), 'bullmq is not installed with kana-native')
  const worker = npx(['worker', '--queue', 'redis://127.0.0.1:1'])
  t.not(worker.code, 0)
  t.regex(worker.stderr, /npm install bullmq ioredis/)

  // 4. CommonJS: the addon comes from the platform package, not from this checkout
  writeFileSync(join(project, 'check.cjs'), `
const k = require('kana-native')
const m = new k.MLP({ layers: [784, 8, 10], seed: 1, threads: 1 })
m.predictProba(new Uint8Array(2 * 784)).then((p) => {
  const addon = Object.keys(require.cache).filter((f) => f.endsWith('.node'))
  console.log(JSON.stringify({ train: typeof k.train, rows: p.length, addon, entry: require.resolve('kana-native') }))
})
`)
  const cjs = sh('node', ['check.cjs'], { cwd: project, env })
  t.is(cjs.code, 0, cjs.stderr)
  const c = JSON.parse(cjs.stdout)
  t.is(c.train, 'function')
  t.is(c.rows, 20)
  t.deepEqual(c.addon, [join(nm, platformPkg, 'kana-native.linux-x64-gnu.node')])
  t.is(c.entry, join(nm, 'kana-native', 'index.js'))

  // 5. an ES module, with named imports (as the README writes them) and the default import
  writeFileSync(join(project, 'check.mjs'), `
import { MLP, train, loadTrainedModel, native } from 'kana-native'
import kana from 'kana-native'
const { model, classNames } = await loadTrainedModel('run/model.safetensors')
console.log(JSON.stringify({ MLP: typeof MLP, train: typeof train, same: kana.MLP === MLP, arch: native.cpuFeatures().arch, classes: classNames.length, layers: model.layers }))
`)
  const esm = sh('node', ['check.mjs'], { cwd: project, env })
  t.is(esm.code, 0, esm.stderr)
  t.like(JSON.parse(esm.stdout), { MLP: 'function', train: 'function', same: true, arch: 'x86_64', classes: 10, layers: [784, 32, 10] })

  // 6. TypeScript against the installed index.d.ts (tsc from this repository), both a use that
  // must compile and one that must not
  writeFileSync(join(project, 'check.ts'), `
import { MLP, train, type TrainResult, type FitOptions } from 'kana-native'
const m: MLP = new MLP({ layers: [784, 16, 10], seed: 1 })
const opts: FitOptions = { epochs: 1, batchSize: 32, optimizer: 'adam', lr: 1e-3 }
export async function run(images: Uint8Array, labels: Uint8Array): Promise<number> {
  await m.fit(images, labels, opts)
  const r: TrainResult = await train({ images: 'X_images.npy', labels: 'y_images.npy', epochs: 1, out: 'run2' })
  return r.metrics.test?.accuracy ?? NaN // null when the split has no test part
}
`)
  writeFileSync(join(project, 'bad.ts'), `
import { MLP } from 'kana-native'
new MLP({ layers: 'wide' })
`)
  writeFileSync(join(project, 'tsconfig.json'), JSON.stringify({ compilerOptions: { strict: true, noEmit: true, module: 'node16', moduleResolution: 'node16', target: 'ES2022', types: ['node'], typeRoots: [join(root, 'node_modules', '@types')] }, files: ['check.ts'] }))
  const tsc = join(root, 'node_modules', 'typescript', 'bin', 'tsc')
  const good = sh('node', [tsc, '-p', 'tsconfig.json'], { cwd: project, env })
  t.is(good.code, 0, good.stdout + good.stderr)
  const bad = sh('node', [tsc, '--strict', '--noEmit', '--module', 'node16', '--moduleResolution', 'node16', '--target', 'ES2022', '--types', 'node', '--typeRoots', join(root, 'node_modules', '@types'), 'bad.ts'], { cwd: project, env })
  t.not(bad.code, 0)
  t.regex(bad.stdout, /bad\.ts\(3,11\): error TS2322/)

  t.log(`install test: ${((Date.now() - t0) / 1000).toFixed(1)} s`)
})
