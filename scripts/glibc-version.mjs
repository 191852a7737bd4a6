// The glibc versions an ELF shared object needs, read from its .gnu.version_r section (the version
// needs the dynamic loader checks at load time), without binutils.
//
//   node scripts/glibc-version.mjs FILE.node     prints the highest, e.g. GLIBC_2.14
//   node scripts/glibc-version.mjs --json FILE   prints {"max":"2.14","versions":[...],"needed":[...]}
import { readFileSync } from 'node:fs'

const SHT_GNU_VERNEED = 0x6ffffffe

export function glibcNeeds(buf) {
  if (buf.readUInt32BE(0) !== 0x7f454c46) throw new Error('not an ELF file')
  if (buf[4] !== 2 || buf[5] !== 1) throw new Error('only 64-bit little-endian ELF is supported')
  const shoff = Number(buf.readBigUInt64LE(0x28))
  const shentsize = buf.readUInt16LE(0x3a)
  const shnum = buf.readUInt16LE(0x3c)
  const section = (i) => {
    const o = shoff + i * shentsize
    return { type: buf.readUInt32LE(o + 4), offset: Number(buf.readBigUInt64LE(o + 0x18)), size: Number(buf.readBigUInt64LE(o + 0x20)), link: buf.readUInt32LE(o + 0x28), info: buf.readUInt32LE(o + 0x2c) }
  }
  const cstr = (at) => buf.toString('latin1', at, buf.indexOf(0, at))
  const versions = new Set()
  const needed = []
  for (let i = 0; i < shnum; i++) {
    const s = section(i)
    if (s.type !== SHT_GNU_VERNEED) continue
    const strtab = section(s.link).offset
    // Elf64_Verneed {u16 version, u16 cnt, u32 file, u32 aux, u32 next}; Elf64_Vernaux {u32 hash, u16 flags, u16 other, u32 name, u32 next}
    let vn = s.offset
    for (let n = 0; n < s.info; n++) {
      const cnt = buf.readUInt16LE(vn + 2)
      const file = cstr(strtab + buf.readUInt32LE(vn + 4))
      let va = vn + buf.readUInt32LE(vn + 8)
      for (let k = 0; k < cnt; k++) {
        const name = cstr(strtab + buf.readUInt32LE(va + 8))
        needed.push(`${file}:${name}`)
        const m = /^GLIBC_(\d+(?:\.\d+)*)$/.exec(name)
        if (m) versions.add(m[1])
        const next = buf.readUInt32LE(va + 12)
        if (!next) break
        va += next
      }
      const next = buf.readUInt32LE(vn + 12)
      if (!next) break
      vn += next
    }
  }
  const sorted = [...versions].sort(compareVersions)
  return { max: sorted.at(-1) ?? null, versions: sorted, needed }
}

export function compareVersions(a, b) {
  const x = a.split('.').map(Number)
  const y = b.split('.').map(Number)
  for (let i = 0; i < Math.max(x.length, y.length); i++) {
    const d = (x[i] ?? 0) - (y[i] ?? 0)
    if (d) return d
  }
  return 0
}

if (import.meta.filename === process.argv[1]) {
  const json = process.argv[2] === '--json'
  const file = process.argv[json ? 3 : 2]
  if (!file) {
    console.error('usage: node scripts/glibc-version.mjs [--json] FILE')
    process.exit(2)
  }
  const r = glibcNeeds(readFileSync(file))
  console.log(json ? JSON.stringify(r) : r.max ? `GLIBC_${r.max}` : 'no glibc version needed')
}
