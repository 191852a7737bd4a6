#!/usr/bin/env node
// Prints the README's option table of `kana-native train`, generated from the settings' schema
// (src/training/config.ts) as compiled into dist/ (`npm run build:ts` first).
//   node scripts/options-table.mjs                 the Markdown table on stdout
//   node scripts/options-table.mjs --write         replace the table in README.md (between its markers)
//   node scripts/options-table.mjs --json-schema   the JSON Schema of a model configuration
import { readFileSync, writeFileSync } from 'node:fs'
import { createRequire } from 'node:module'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'

const root = join(dirname(fileURLToPath(import.meta.url)), '..')
const require = createRequire(import.meta.url)
let table, config
try {
  table = require(join(root, 'dist', 'cli', 'options-table.js'))
  config = require(join(root, 'dist', 'training', 'config.js'))
} catch (e) {
  process.stderr.write(`options-table: cannot load dist/ (run \`npm run build:ts\` first): ${e.message}\n`)
  process.exit(1)
}

const arg = process.argv[2]
if (arg === '--json-schema') {
  process.stdout.write(JSON.stringify(config.modelConfigJsonSchema(), null, 2) + '\n')
} else if (arg === '--write') {
  const path = join(root, 'README.md')
  const before = readFileSync(path, 'utf8')
  const after = table.withTable(before, table.trainOptionsTable())
  if (after !== before) writeFileSync(path, after)
  process.stderr.write(after === before ? 'README.md: the table is up to date\n' : 'README.md: table rewritten\n')
} else if (arg === undefined) {
  process.stdout.write(table.trainOptionsTable())
} else {
  process.stderr.write(`options-table: unknown argument ${arg} (use --write or --json-schema)\n`)
  process.exit(2)
}
