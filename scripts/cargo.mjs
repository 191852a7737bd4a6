// `node scripts/cargo.mjs ARGS…` = `cargo ARGS…` after making sure cargo can reach its crates
// (crates.io, or Debian's packages when crates.io is unreachable; see cargo-source.mjs).
import { spawnSync } from 'node:child_process'
import { resolve } from 'node:path'
import { ensureCargoSource } from './cargo-source.mjs'

await ensureCargoSource()
const r = spawnSync('cargo', process.argv.slice(2), { stdio: 'inherit', cwd: resolve(import.meta.dirname, '..') })
process.exit(r.status ?? 1)
