// The README's option table of `kana-native train`: the model settings' rows generated from the
// schema (training/config.ts FIELDS), between fixed rows for the options that are not model
// settings (data, split, run directory, output), which the CLI declares itself (main.ts).
// `node scripts/options-table.mjs --write` puts it into README.md; a test keeps the two equal.
import { FIELDS } from '../training/config'
import { defaultShown, flagKind, flagOf, type Fields } from './args'

type Row = [option: string, defaultValue: string, meaning: string]

/** Before the model settings: where the data comes from and how it is split. */
const DATA_ROWS: Row[] = [
  ['`--images PATH`', '`./X_images.npy`', 'images: `.npy` (N×784 or N×28×28; uint8, int/float holding integers 0..255, or floats scaled to [0, 1] that are exact multiples of 1/255), `.npz` (`arr_0`), IDX (gzipped or not)'],
  ['`--labels PATH`', '`./y_images.npy`', 'labels: any integer dtype'],
  ['`--dataset k49|kmnist|fashion-mnist`', '', 'a named data set instead of files: downloaded once (md5-verified, progress bar) into the cache; its official test set is the test set and validation comes out of its training set. Offline it says so and says where to put the files by hand. Fashion-MNIST is taken from Debian\'s `dataset-fashion-mnist` when installed.'],
  ['`--cache-dir DIR`', '`$KANA_NATIVE_CACHE` or `~/.cache/kana-native`', 'where named data sets live'],
  ['`--classmap CSV`', 'found next to the images', 'class names (`index,codepoint,char`)'],
  ['`--split a,b,c`', '`0.6,0.2,0.2`', 'stratified, seeded train/validation/test fractions'],
]

/** After the model settings: the run itself and the output. */
const RUN_ROWS: Row[] = [
  ['`--config FILE`', '', 'JSON object of model settings (the keys of the Node API: `hidden`, `optimizer`, `lr`, `batchSize`, … as in this table) and data options (`images`, `labels`, `dataset`, `cacheDir`, `classmap`, `split` {train, validation, test}, `threads`, `checkpointEvery`); relative paths are relative to the file; flags given override it; unknown keys are an error'],
  ['`--threads n`', 'all cores', 'engine threads'],
  ['`--out DIR`', '`runs/<timestamp>`', 'run directory (locked while in use; see *Run directory safety* below)'],
  ['`--overwrite`', 'off', 'replace the finished run in `--out`: only the files kana-native writes there are removed'],
  ['`--resume RUN_DIR`', '', 'continue an interrupted run from its checkpoint, to the result it would have had (see *Interrupt and resume* below)'],
  ['`--checkpoint-every s`', '60', 'also write a checkpoint between epochs once this many seconds have passed since the last, for a run killed outright; 0: only on Ctrl-C'],
  ['`--json`, `--quiet`, `--plain`', '', 'output modes'],
]

/** The row of one model setting, from its declaration. */
function fieldRow(k: string, fields: Fields): Row | undefined {
  const flag = flagOf(k, fields)
  if (flag === undefined) return undefined
  const f = fields[k]
  const kind = flagKind(k, fields)
  let option: string
  if ('choices' in kind) option = `\`--${flag} ${kind.choices.join('|')}\``
  else if (kind.type === 'boolean') option = `\`--${flag}\` / \`--no-${flag}\``
  else option = `\`--${flag}${f.arg ? ` ${f.arg}` : ''}\``
  const shown = defaultShown(k, fields) ?? ''
  const plain = f.defaultText !== undefined || typeof f.default === 'number' || typeof f.default === 'boolean'
  return [option, plain || shown === '' ? shown : `\`${shown}\``, f.doc]
}

/** A Markdown cell: pipes escaped (also inside code spans, as GitHub's tables need). */
const cell = (s: string) => s.replace(/\|/g, '\\|')

/** The whole table, as README.md holds it between its markers. */
export function trainOptionsTable(fields: Fields = FIELDS as unknown as Fields): string {
  const rows = [...DATA_ROWS, ...Object.keys(fields).map((k) => fieldRow(k, fields)).filter((r): r is Row => r !== undefined), ...RUN_ROWS]
  return ['| option | default | meaning |', '|---|---|---|', ...rows.map((r) => `|${r.map((c) => (c ? ` ${cell(c)} ` : ' ')).join('|')}|`)].join('\n') + '\n'
}

export const TABLE_START = '<!-- options-table:train — generated from the schema by `node scripts/options-table.mjs --write`; edit src/training/config.ts, not this table -->'
export const TABLE_END = '<!-- /options-table:train -->'

/** README text with the table between the markers replaced by `table`. */
export function withTable(readme: string, table: string): string {
  const a = readme.indexOf(TABLE_START)
  const b = readme.indexOf(TABLE_END)
  if (a < 0 || b < a) throw new Error(`README.md lacks the markers ${TABLE_START} … ${TABLE_END}`)
  return readme.slice(0, a + TABLE_START.length) + '\n' + table + readme.slice(b)
}

/** The table README.md holds between the markers. */
export function tableIn(readme: string): string | undefined {
  const a = readme.indexOf(TABLE_START)
  const b = readme.indexOf(TABLE_END)
  return a < 0 || b < a ? undefined : readme.slice(a + TABLE_START.length + 1, b)
}
