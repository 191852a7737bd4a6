// Untrusted files and directories (issue K): nothing outside the run is written or removed, and
// crafted inputs are refused with a clear error. The fuzz suites hold the generators; these are
// the regression cases, each one a reproduction that once succeeded.
import test from 'ava'
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { commitCheckpoint } from '../src/training/checkpoint'
import { makeOutputDir } from '../src/output/atomic'
import { decodeModel, ModelFileError } from '../src/output/model-file'
import { modelWithNames } from './helpers/crafted'
import { parseClassmap } from '../src/data/classmap'
import { DataError } from '../src/data/readers'
import { RunDirError } from '../src/training/run-dir'
import { train } from '../src/training/train'
import { runExperiment } from '../src/experiment/experiment'
import { learnable } from './helpers/learnable'
import { miniConfig, miniData } from './experiment-fixtures'

const tmp = mkdtempSync(join(tmpdir(), 'kana-untrusted-'))
test.after.always(() => rmSync(tmp, { recursive: true, force: true }))
let n = 0
const fresh = (name: string) => { const d = join(tmp, `${name}-${++n}`); mkdirSync(d, { recursive: true }); return d }
/** A folder of someone else's files, and what it held. */
function victim(): { dir: string; before: Record<string, string> } {
  const dir = fresh('victim')
  const before = { 'precious.safetensors': 'weights of another project', 'notes.txt': 'hello', 'metrics.json': '{"mine": true}' }
  for (const [f, text] of Object.entries(before)) writeFileSync(join(dir, f), text)
  return { dir, before }
}
const contents = (dir: string) => Object.fromEntries(readdirSync(dir).sort().map((f) => [f, readFileSync(join(dir, f), 'utf8')]))

const data = learnable(300, 16, 3, 5)

test('train refuses a run directory whose checkpoint/ is a symbolic link, and leaves the link\'s target alone', async (t) => {
  const v = victim()
  const run = fresh('run')
  symlinkSync(v.dir, join(run, 'checkpoint'))
  const ac = new AbortController()
  const e = await t.throwsAsync(train({ data, hidden: [8], epochs: 3, batchSize: 16, seed: 1, threads: 1, out: run, signal: ac.signal, progressInterval: 1, onProgress: (p) => { if (p.step > 3) ac.abort() } }))
  t.true(e instanceof RunDirError, String(e))
  t.is((e as RunDirError).code, 'ESYMLINK')
  t.regex(e!.message, /checkpoint is a symbolic link/)
  t.deepEqual(contents(v.dir), v.before)
})

test('runExperiment refuses an experiment directory whose models/ is a symbolic link, and leaves the target alone', async (t) => {
  const v = victim()
  mkdirSync(join(v.dir, 'M1'))
  writeFileSync(join(v.dir, 'M1', 'config.json'), 'theirs')
  const out = fresh('exp')
  symlinkSync(v.dir, join(out, 'models'))
  const e = await t.throwsAsync(runExperiment({ ...miniConfig, inMemory: await miniData(), report: false, out, overwrite: true }))
  t.is((e as RunDirError).code, 'ESYMLINK', String(e))
  t.regex(e!.message, /models is a symbolic link/)
  t.is(readFileSync(join(v.dir, 'M1', 'config.json'), 'utf8'), 'theirs')
  t.deepEqual(readdirSync(v.dir).sort(), [...Object.keys(v.before), 'M1'].sort())
})

test('makeOutputDir: a link among the folders kana-native names is refused; the output directory itself may be a link', async (t) => {
  const v = victim()
  const root = fresh('root')
  symlinkSync(v.dir, join(root, 'models'))
  const e = await t.throwsAsync(makeOutputDir(join(root, 'models', 'M1'), 2))
  t.is((e as NodeJS.ErrnoException).code, 'ESYMLINK')
  t.false(existsSync(join(v.dir, 'M1')))
  // M1 itself a link (models real)
  const root2 = fresh('root')
  mkdirSync(join(root2, 'models'))
  symlinkSync(v.dir, join(root2, 'models', 'M1'))
  t.is(((await t.throwsAsync(makeOutputDir(join(root2, 'models', 'M1'), 2))) as NodeJS.ErrnoException).code, 'ESYMLINK')
  // a file where a folder belongs
  const root3 = fresh('root')
  writeFileSync(join(root3, 'search'), '')
  t.is(((await t.throwsAsync(makeOutputDir(join(root3, 'search')))) as NodeJS.ErrnoException).code, 'ENOTDIR')
  // the user's own directory reached through a link is fine
  const real = fresh('real')
  const link = join(tmp, `link-${++n}`)
  symlinkSync(real, link)
  await makeOutputDir(join(link, 'search'))
  t.true(existsSync(join(real, 'search')))
})

test('commitCheckpoint writes into no symbolic link, and its clean-up removes only the files the previous index named', async (t) => {
  const v = victim()
  const run = fresh('ck')
  symlinkSync(v.dir, join(run, 'checkpoint'))
  const index = (files: object) => ({ format: 'test', files })
  const e = await t.throwsAsync(commitCheckpoint(join(run, 'checkpoint'), 'index.json', [['tensors', new Uint8Array(8)]], index))
  t.is((e as NodeJS.ErrnoException).code, 'ESYMLINK')
  t.deepEqual(contents(v.dir), v.before)
  // a real folder holding other files, one even named as a checkpoint's data file is
  const dir = join(fresh('ck'), 'checkpoint')
  mkdirSync(dir)
  const foreign = { 'mine.safetensors': 'a', 'tensors.zzzz-00000000.safetensors': 'b', 'notes.txt': 'c' }
  for (const [f, x] of Object.entries(foreign)) writeFileSync(join(dir, f), x)
  await commitCheckpoint(dir, 'index.json', [['tensors', new Uint8Array(8)]], index)
  const first = readdirSync(dir).filter((f) => !(f in foreign) && f.endsWith('.safetensors'))
  t.is(first.length, 1)
  await commitCheckpoint(dir, 'index.json', [['tensors', new Uint8Array(16)]], index)
  const second = readdirSync(dir).filter((f) => !(f in foreign) && f.endsWith('.safetensors'))
  t.is(second.length, 1)
  t.not(second[0], first[0], 'the first checkpoint\'s file was removed')
  for (const [f, x] of Object.entries(foreign)) t.is(readFileSync(join(dir, f), 'utf8'), x, f)
})

// ---------------------------------------------------------------------------------------------
// Class names with control characters: refused where names are loaded (model files, class maps)

const CONTROL = ['\x1b[2J\x1b[31mPWNED', 'a\nb', '\x07', 'x\x00', '\u009b31m', '\u202Eevil', 'line\u2028sep', '\x7f']

test('a model file whose class names hold control characters is refused at load, naming the class and the character', (t) => {
  t.deepEqual(decodeModel(modelWithNames(['お', 'き'])).meta.classNames, ['お', 'き'])
  for (const bad of CONTROL) {
    const e = t.throws(() => decodeModel(modelWithNames(['お', bad]), 'm.safetensors'), undefined, JSON.stringify(bad))
    t.true(e instanceof ModelFileError, String(e))
    t.is((e as ModelFileError).code, 'ECLASSNAMES')
    t.regex(e!.message, /classNames\[1\] holds the control character U\+[0-9A-F]{4}/)
    t.false(/[\x00-\x1f\x7f-\x9f]/.test(e!.message), 'the message itself holds no control character')
  }
})

test('a class map CSV row naming a control character is refused', (t) => {
  t.deepEqual(parseClassmap('index,codepoint,char\n0,U+304A,お\n'), ['お'])
  for (const [cp, ch] of [['001B', '\x1b'], ['0007', '\x07'], ['009B', '\u009b'], ['202E', '\u202E']]) {
    const e = t.throws(() => parseClassmap(`index,codepoint,char\n0,U+304A,お\n1,U+${cp},${ch}\n`, 'map.csv'), undefined, cp)
    t.true(e instanceof DataError)
    t.regex(e!.message, new RegExp(`line 3: the class name for U\\+${cp} holds the control character U\\+${cp}`))
  }
  // a line separator is no character of the row's pattern: refused as a malformed row
  t.throws(() => parseClassmap('index,codepoint,char\n0,U+2028,\u2028\n'), { instanceOf: DataError })
})
