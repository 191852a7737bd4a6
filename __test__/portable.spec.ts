// The addon this checkout built (and `npm run package` ships) loads on glibc 2.17 and later:
// its highest needed GLIBC symbol version, read from the ELF's .gnu.version_r by
// scripts/glibc-version.mjs and, where binutils is installed, by objdump as well.
import test from 'ava'
import { spawnSync } from 'node:child_process'
import { existsSync } from 'node:fs'
import { join } from 'node:path'

const root = join(__dirname, '..')
const addon = join(root, 'kana-native.linux-x64-gnu.node')
const linuxX64 = process.platform === 'linux' && process.arch === 'x64'

const versionParts = (v: string) => v.split('.').map(Number)
const le = (a: string, b: string) => {
  const [x, y] = [versionParts(a), versionParts(b)]
  for (let i = 0; i < Math.max(x.length, y.length); i++) if ((x[i] ?? 0) !== (y[i] ?? 0)) return (x[i] ?? 0) < (y[i] ?? 0)
  return true
}

;(linuxX64 ? test : test.skip)('the built linux-x64-gnu addon needs glibc 2.17 at most', (t) => {
  t.true(existsSync(addon), `${addon} is built (npm run build)`)
  const r = spawnSync(process.execPath, [join(root, 'scripts', 'glibc-version.mjs'), '--json', addon], { encoding: 'utf8' })
  t.is(r.status, 0, r.stderr)
  const { max, versions, needed } = JSON.parse(r.stdout) as { max: string; versions: string[]; needed: string[] }
  t.log(`highest GLIBC version needed: ${max} (of ${versions.join(', ')})`)
  t.true(le(max, '2.17'), `needs GLIBC_${max}: linked against the host glibc, not the 2.17 toolchain (scripts/cross-toolchain.mjs)`)
  t.true(needed.some((n) => n.startsWith('libc.so.6:GLIBC_')), 'the parser found libc\'s version needs')
  const od = spawnSync('objdump', ['-T', addon], { encoding: 'utf8', maxBuffer: 64 << 20 })
  if (od.status === 0) {
    const fromObjdump = [...new Set([...od.stdout.matchAll(/\(?GLIBC_([\d.]+)\)?/g)].map((m) => m[1]))].sort((a, b) => (le(a, b) ? (le(b, a) ? 0 : -1) : 1))
    t.is(fromObjdump.at(-1), max, 'objdump -T agrees')
  } else t.log('objdump not installed: the ELF parser alone')
  // and it is still runtime-dispatched, not built for this CPU
  const { native } = require('../index.js') as { native: { cpuFeatures(): { arch: string } } }
  t.is(native.cpuFeatures().arch, 'x86_64')
})
