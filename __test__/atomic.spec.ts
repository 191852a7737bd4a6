import test from 'ava';
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';

import { writeFileAtomic, writeFileAtomicSync } from '../src/output/atomic';
import { mulberry32 } from '../src/data/split';

const tmpDirs: string[] = [];
function tmpDir(): string {
  const d = fs.mkdtempSync(path.join(os.tmpdir(), 'kana-atomic-'));
  tmpDirs.push(d);
  return d;
}
test.after.always(() => { for (const d of tmpDirs) fs.rmSync(d, { recursive: true, force: true }); });

const strays = (dir: string, base: string) => fs.readdirSync(dir).filter((f) => f !== base);

test('writes, replaces, and leaves no temp files (async and sync)', async (t) => {
  const dir = tmpDir();
  const file = path.join(dir, 'out.txt');
  await writeFileAtomic(file, 'héllo');
  t.is(fs.readFileSync(file, 'utf8'), 'héllo');
  await writeFileAtomic(file, new Uint8Array([1, 2, 3]));
  t.deepEqual([...fs.readFileSync(file)], [1, 2, 3]);
  writeFileAtomicSync(file, 'sync');
  t.is(fs.readFileSync(file, 'utf8'), 'sync');
  t.deepEqual(strays(dir, 'out.txt'), []);
});

test('a missing directory is named in the error, for both variants', async (t) => {
  const dir = path.join(tmpDir(), 'no', 'such');
  const file = path.join(dir, 'model.safetensors');
  const e = await t.throwsAsync(writeFileAtomic(file, 'x'));
  t.is(e!.message, `cannot write ${file}: directory ${dir} does not exist`);
  t.is((e as NodeJS.ErrnoException).code, 'ENOENT');
  t.truthy(e!.cause);
  t.throws(() => writeFileAtomicSync(file, 'x'), { message: `cannot write ${file}: directory ${dir} does not exist` });
});

test('a failed rename (target is a directory) removes the temp file', async (t) => {
  const dir = tmpDir();
  const target = path.join(dir, 'taken');
  fs.mkdirSync(target);
  fs.writeFileSync(path.join(target, 'keep'), 'x'); // non-empty, so rename(2) cannot replace it
  await t.throwsAsync(writeFileAtomic(target, 'x'), { message: new RegExp(`^cannot write ${target}: `) });
  t.throws(() => writeFileAtomicSync(target, 'x'), { message: new RegExp(`^cannot write ${target}: `) });
  t.deepEqual(strays(dir, 'taken'), []);
});

test('overwriting keeps the permission bits; a new file gets the usual umask default', async (t) => {
  if (process.platform === 'win32') return t.pass('POSIX modes only');
  const dir = tmpDir();
  const file = path.join(dir, 'secret.json');
  fs.writeFileSync(file, 'old');
  fs.chmodSync(file, 0o640);
  await writeFileAtomic(file, 'new');
  t.is(fs.statSync(file).mode & 0o777, 0o640);
  fs.chmodSync(file, 0o600);
  writeFileAtomicSync(file, 'newer');
  t.is(fs.statSync(file).mode & 0o777, 0o600);
  t.is(fs.readFileSync(file, 'utf8'), 'newer');

  const fresh = path.join(dir, 'fresh');
  await writeFileAtomic(fresh, 'x');
  fs.writeFileSync(path.join(dir, 'plain'), 'x');
  t.is(fs.statSync(fresh).mode & 0o777, fs.statSync(path.join(dir, 'plain')).mode & 0o777);
});

/*
 * Kill-during-write property. A child process writes A, B, A, B, … (different sizes, so a torn
 * or truncated file cannot pass for either) to one path, in a loop, with writeFileAtomic (or the
 * sync variant, alternately); we SIGKILL it at seeded random moments and check that the file is
 * exactly A or B every time. A plain fs.writeFile in the same loop fails this within a few kills.
 *
 * Temp files: a killed writer cannot clean up, so at most ONE temp file — the one in flight,
 * named `.<base>.<child pid>.<hex>.tmp` — may remain per kill. We check that and then delete it,
 * as a later cleanup would.
 */
test('SIGKILL during writes never leaves a torn file', async (t) => {
  if (process.platform === 'win32') return t.pass('SIGKILL is POSIX');
  const dir = tmpDir();
  const base = 'model.bin';
  const file = path.join(dir, base);
  const A = Buffer.alloc(3 << 20, 'A');
  const B = Buffer.alloc(5 << 20, 'B');
  fs.writeFileSync(file, A);
  // The child loads src/atomic.ts through tsx, like ava does here.
  const child = `
    const { writeFileAtomic, writeFileAtomicSync } = require(${JSON.stringify(path.resolve(__dirname, '../src/output/atomic.ts'))});
    const A = Buffer.alloc(3 << 20, 'A'), B = Buffer.alloc(5 << 20, 'B');
    const sync = process.argv[1] === 'sync';
    (async () => {
      process.stdout.write('ready\\n');
      for (let i = 0; ; i++) {
        if (sync) writeFileAtomicSync(${JSON.stringify(file)}, i % 2 ? B : A);
        else await writeFileAtomic(${JSON.stringify(file)}, i % 2 ? B : A);
      }
    })();`;
  const rand = mulberry32(20240611);
  const started = Date.now();
  let kills = 0;
  let inFlight = 0;
  for (let round = 0; round < 20 && Date.now() - started < 8000; round++) {
    const proc = spawn(process.execPath, ['--require', 'tsx/cjs', '-e', child, round % 2 ? 'sync' : 'async'], { stdio: ['ignore', 'pipe', 'inherit'] });
    await new Promise<void>((resolve, reject) => {
      proc.stdout.once('data', () => resolve());
      proc.once('exit', (code) => reject(new Error(`child exited early with ${code}`)));
    });
    const delay = 5 + rand() * 60;
    await new Promise((r) => setTimeout(r, delay / 2));
    const seen = fs.readFileSync(file); // a concurrent reader must never see a torn file either
    t.true(seen.equals(A) || seen.equals(B), `round ${round}: reader saw ${seen.length} bytes mid-loop`);
    await new Promise((r) => setTimeout(r, delay / 2));
    const exited = new Promise((r) => proc.once('exit', r));
    proc.kill('SIGKILL');
    await exited;
    kills++;

    const got = fs.readFileSync(file);
    t.true(got.equals(A) || got.equals(B), `round ${round}: after SIGKILL at ${delay.toFixed(1)} ms the file is torn (${got.length} bytes)`);
    const left = strays(dir, base);
    t.true(left.length <= 1, `round ${round}: more than the in-flight temp file left: ${left}`);
    for (const f of left) {
      t.regex(f, new RegExp(`^\\.${base.replace('.', '\\.')}\\.${proc.pid}\\.[0-9a-f]{12}\\.tmp$`));
      fs.rmSync(path.join(dir, f));
      inFlight++;
    }
  }
  t.true(kills >= 10, `only ${kills} kills within the time bound`);
  t.log(`${kills} kills, ${inFlight} of them mid-write (temp file in flight)`);
});
