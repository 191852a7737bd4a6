// The study's trials on a job queue (src/queue): a Redis of our own on 127.0.0.1 (a free port, a
// temporary directory, a password), worker processes of this source tree, and the miniature
// experiment from .npy files must give exactly the local run's table, histories, trial logs and
// weights — also when a worker is killed mid-trial, when the coordinator is killed and resumed,
// and when Redis is restarted (or fail with a clear message, never a wrong result). Hostile and
// other-version jobs are refused. Skipped, with a note, when redis-server is not installed.
import test from 'ava'
import { spawn, spawnSync, type ChildProcess } from 'node:child_process'
import { mkdtempSync, readFileSync, writeFileSync, readdirSync } from 'node:fs'
import { createServer } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { pathToFileURL } from 'node:url'
import { Queue } from 'bullmq'
import { runExperiment, MODEL_IDS, type ExperimentConfig, type ExperimentResult } from '../src/experiment/experiment'
import { loadModel } from '../src/output/model-file'
import { QUEUE_NAME, QUEUE_PREFIX, parseQueueUrl, redactSecrets } from '../src/queue/connection'
import { JOB_FORMAT, KANA_VERSION, PROTOCOL, encodeSnapshotBlob } from '../src/queue/payload'
import { resolveModelConfig, Trial } from '../src/training/trial'
import { trialData } from '../src/training/sources'
import { dataFingerprint } from '../src/training/checkpoint'
import { loadInputs } from '../src/data/inputs'
import { miniConfig, miniData, npy } from './experiment-fixtures'

const root = join(__dirname, '..')
const cliSrc = join(__dirname, 'helpers', 'cli-src.ts')
// tsx by file URL: the processes run in temporary directories
const tsxLoader = pathToFileURL(join(root, 'node_modules', 'tsx', 'dist', 'loader.mjs')).href
const hasRedis = spawnSync('redis-server', ['--version']).status === 0
const PASSWORD = 's3cr3t-pw-4711'
const VOLATILE = new Set(['seconds', 'referenceSeconds', 'at', 'createdAt', 'timings', 'dir'])

function timeless(v: unknown): unknown {
  if (Array.isArray(v)) return v.map(timeless)
  if (v && typeof v === 'object') return Object.fromEntries(Object.entries(v).filter(([k]) => !VOLATILE.has(k)).map(([k, x]) => [k, timeless(x)]))
  return v
}

async function outcome(r: ExperimentResult, models = MODEL_IDS) {
  const weights: Record<string, number[][]> = {}
  for (const id of models) weights[id] = (await loadModel(join(r.dir, 'models', id, 'model.safetensors'))).weights.map((w) => Array.from(w))
  const { dir: _dir, reportPath: _report, ...rest } = r
  return { result: timeless(rest), weights }
}

const freePort = () => new Promise<number>((resolve, reject) => {
  const s = createServer()
  s.once('error', reject)
  s.listen(0, '127.0.0.1', () => {
    const port = (s.address() as { port: number }).port
    s.close(() => resolve(port))
  })
})

/** Resolves when `p` writes a line matching `re` (stdout or stderr), rejects after `ms`. */
function waitFor(p: ChildProcess, re: RegExp, ms: number, what: string): Promise<void> {
  return new Promise((resolve, reject) => {
    let seen = ''
    const timer = setTimeout(() => { off(); reject(new Error(`${what}: no ${re} within ${ms} ms; output: ${seen.slice(-2000)}`)) }, ms)
    const on = (d: Buffer) => {
      seen += String(d)
      if (re.test(seen)) { off(); resolve() }
    }
    const gone = () => { off(); reject(new Error(`${what}: exited before ${re}; output: ${seen.slice(-2000)}`)) }
    const off = () => { clearTimeout(timer); p.stdout?.off('data', on); p.stderr?.off('data', on); p.off('exit', gone) }
    p.once('exit', gone)
    p.stdout?.on('data', on)
    p.stderr?.on('data', on)
  })
}

const exited = (p: ChildProcess) => new Promise<void>((resolve) => (p.exitCode !== null || p.signalCode !== null ? resolve() : p.once('exit', () => resolve())))

/** A Redis of our own; every process the test starts is stopped by `stop()`. */
class Lab {
  redis?: ChildProcess
  procs: ChildProcess[] = []
  logs = new Map<ChildProcess, string>()
  readonly dir = mkdtempSync(join(tmpdir(), 'kana-queue-'))
  port = 0
  get url() { return `redis://:${PASSWORD}@127.0.0.1:${this.port}/0` }
  get bare() { return `redis://127.0.0.1:${this.port}` }

  async startRedis(): Promise<void> {
    if (!this.port) this.port = await freePort()
    const r = spawn('redis-server', ['--port', String(this.port), '--bind', '127.0.0.1', '--dir', this.dir, '--save', '', '--appendonly', 'no', '--requirepass', PASSWORD, '--protected-mode', 'yes'], { stdio: ['ignore', 'pipe', 'pipe'] })
    this.redis = r
    await waitFor(r, /Ready to accept connections/, 10_000, 'redis-server')
  }

  async stopRedis(): Promise<void> {
    const r = this.redis
    if (!r) return
    r.kill('SIGKILL')
    await exited(r)
    this.redis = undefined
  }

  spawn(args: string[], cwd = this.dir): ChildProcess {
    const p = spawn(process.execPath, [`--import=${tsxLoader}`, cliSrc, ...args], { cwd, env: { ...process.env, NO_COLOR: '1', KANA_NATIVE_REDIS_PASSWORD: PASSWORD }, stdio: ['ignore', 'pipe', 'pipe'] })
    this.procs.push(p)
    this.logs.set(p, '')
    const keep = (d: Buffer) => this.logs.set(p, this.logs.get(p) + String(d))
    p.stdout!.on('data', keep)
    p.stderr!.on('data', keep)
    return p
  }

  async worker(extra: string[] = []): Promise<ChildProcess> {
    // the password from the environment: it is not on the worker's command line
    const p = this.spawn(['worker', '--queue', this.bare, ...extra])
    await waitFor(p, /taking trial jobs/, 30_000, 'worker')
    return p
  }

  async stop(): Promise<void> {
    for (const p of this.procs) if (p.exitCode === null && p.signalCode === null) p.kill('SIGKILL')
    await Promise.all(this.procs.map(exited))
    await this.stopRedis()
  }

  allLogs(): string {
    return [...this.logs.values()].join('\n')
  }
}

/** The miniature experiment's data as .npy files (the workers read them), and its configuration. */
function writeData(dir: string, d: Awaited<ReturnType<typeof miniData>>) {
  writeFileSync(join(dir, 'X.npy'), npy('|u1', [d.labels.length, 784], d.images))
  writeFileSync(join(dir, 'y.npy'), npy('<i4', [d.labels.length], d.labels))
  return { images: join(dir, 'X.npy'), labels: join(dir, 'y.npy') }
}

/** Fewer models for the fault tests (the files of six models take most of a run's time). */
const FAULT_MODELS: ExperimentConfig['models'] = ['M0', 'M1', 'M4']

let dataDir = ''
let data: { images: string; labels: string }
let baseline: Awaited<ReturnType<typeof outcome>>
let faultBaseline: Awaited<ReturnType<typeof outcome>>

if (!hasRedis) {
  test('queue: skipped', (t) => {
    t.log('redis-server is not installed (apt-get install redis-server): the job-queue tests are skipped')
    t.pass()
  })
} else {
  test.before(async () => {
    dataDir = mkdtempSync(join(tmpdir(), 'kana-queue-data-'))
    data = writeData(dataDir, await miniData())
    baseline = await outcome(await runExperiment({ ...miniConfig, data, report: false, out: mkdtempSync(join(tmpdir(), 'kana-queue-local-')) }))
    faultBaseline = await outcome(await runExperiment({ ...miniConfig, models: FAULT_MODELS, data, report: false, out: mkdtempSync(join(tmpdir(), 'kana-queue-local-')) }), FAULT_MODELS)
  })

  test.serial('two workers give the local run\'s table, histories, trial logs and weights bit for bit; no password is written', async (t) => {
    const lab = new Lab()
    try {
      await lab.startRedis()
      await Promise.all([lab.worker(), lab.worker()])
      const lines: string[] = []
      const out = mkdtempSync(join(tmpdir(), 'kana-queue-exp-'))
      const started = performance.now()
      const r = await runExperiment({ ...miniConfig, data, report: false, out, queue: lab.url, command: ['experiment', '--queue', lab.url], log: (l) => lines.push(l) })
      t.log(`queued experiment: ${((performance.now() - started) / 1000).toFixed(1)} s`)
      const got = await outcome(r)
      t.deepEqual(got.result, baseline.result)
      t.deepEqual(got.weights, baseline.weights)
      // both workers trained something
      const trained = [...lab.logs.values()].filter((l) => /done at epoch/.test(l)).length
      t.is(trained, 2, 'both workers took jobs')
      for (const f of ['experiment.json', 'experiment-config.json']) t.false(readFileSync(join(out, f), 'utf8').includes(PASSWORD), `${f} holds no password`)
      t.true(readFileSync(join(out, 'experiment.json'), 'utf8').includes('redis://***@127.0.0.1'), 'the command is recorded, redacted')
      t.false(lines.join('\n').includes(PASSWORD), 'the log holds no password')
      t.false(lab.allLogs().includes(PASSWORD), 'the workers\' output holds no password')
    } finally {
      await lab.stop()
    }
  })

  test.serial('a worker killed mid-trial: its job is taken up again from the last epoch stored, same result', async (t) => {
    const lab = new Lab()
    try {
      await lab.startRedis()
      const opts = ['--lock-seconds', '1', '--snapshot-every', '0']
      const [a, b] = await Promise.all([lab.worker(opts), lab.worker(opts)])
      // M4's job (3 epochs): kill the worker that reports its second epoch (its state after the first is in the job)
      let victim: ChildProcess | undefined
      const killed = new Promise<void>((resolve) => {
        for (const w of [a, b]) {
          const on = (d: Buffer) => {
            if (!victim && /trial M4 epoch 2\/3/.test(String(d))) {
              victim = w
              w.kill('SIGKILL')
              resolve()
            }
          }
          w.stderr!.on('data', on)
        }
      })
      t.timeout(90_000)
      const run = runExperiment({ ...miniConfig, models: FAULT_MODELS, data, report: false, out: mkdtempSync(join(tmpdir(), 'kana-queue-exp-')), queue: lab.url, log: (l) => process.env.KANA_TEST_DEBUG && console.error('C', l) })
      if (process.env.KANA_TEST_DEBUG) for (const w of [a, b]) w.stderr!.on('data', (d) => console.error(String(d)))
      const got = await outcome(await run, FAULT_MODELS)
      await killed
      t.deepEqual(got.result, faultBaseline.result)
      t.deepEqual(got.weights, faultBaseline.weights)
      t.regex(lab.allLogs(), /trial M4 from epoch [12] to 3/, 'the job continued from an epoch stored before the kill')
    } finally {
      await lab.stop()
    }
  })

  test.serial('the coordinator killed during the search, resumed with --resume: same result', async (t) => {
    const lab = new Lab()
    try {
      await lab.startRedis()
      await Promise.all([lab.worker(), lab.worker()])
      writeFileSync(join(lab.dir, 'exp.json'), JSON.stringify({ ...miniConfig, models: FAULT_MODELS, data }))
      const coord = lab.spawn(['experiment', '--config', 'exp.json', '--out', 'exp', '--no-report', '--plain', '--queue', lab.bare])
      await waitFor(coord, /search trial 1\/2/, 60_000, 'coordinator')
      coord.kill('SIGKILL')
      await exited(coord)
      const lines: string[] = []
      const r = await runExperiment({ resume: join(lab.dir, 'exp'), report: false, queue: lab.url, log: (l) => lines.push(l) })
      const got = await outcome(r, FAULT_MODELS)
      t.deepEqual(got.result, faultBaseline.result)
      t.deepEqual(got.weights, faultBaseline.weights)
      t.false(lab.logs.get(coord)!.includes(PASSWORD))
    } finally {
      await lab.stop()
    }
  })

  test.serial('Redis restarted mid-run (its data lost): the run completes with the same result, or fails with a clear message', async (t) => {
    const lab = new Lab()
    try {
      await lab.startRedis()
      const workers = await Promise.all([lab.worker(), lab.worker()])
      const lines: string[] = []
      let restarted: Promise<void> | undefined
      const log = (l: string) => lines.push(l)
      // while M4's job runs on a worker: Redis killed, and started again empty
      for (const w of workers) {
        w.stderr!.on('data', (d) => {
          if (!restarted && /trial M4 epoch 1\/3/.test(String(d))) restarted = lab.stopRedis().then(() => new Promise((r) => setTimeout(r, 500))).then(() => lab.startRedis())
        })
      }
      try {
        const r = await runExperiment({ ...miniConfig, models: FAULT_MODELS, data, report: false, out: mkdtempSync(join(tmpdir(), 'kana-queue-exp-')), queue: lab.url, log })
        await restarted
        const got = await outcome(r, FAULT_MODELS)
        t.deepEqual(got.result, faultBaseline.result)
        t.deepEqual(got.weights, faultBaseline.weights)
        t.log(`completed; ${lines.filter((l) => /sending it again/.test(l)).length} job(s) sent again`)
      } catch (e) {
        await restarted
        t.regex((e as Error).message, /job queue .* did not answer|failed on its worker|vanished/)
        t.log(`failed clearly: ${(e as Error).message}`)
      }
      t.truthy(restarted, 'Redis was restarted')
    } finally {
      await lab.stop()
    }
  })

  test.serial('malformed, hostile and other-version jobs are refused with a reason', async (t) => {
    const lab = new Lab()
    let q: Queue | undefined
    try {
      // first a worker of this version alone
      const config = resolveModelConfig({ hidden: [8], optimizer: 'adam', lr: 1e-3, batchSize: 32, epochs: 2, seed: 3 })
      const d = await miniData()
      const td = trialData({ images: d.images.subarray(0, 400 * 784), labels: d.labels.subarray(0, 400) }, { images: d.images.subarray(400 * 784), labels: d.labels.subarray(400) }, 784, 10)
      const fresh = new Trial(config, td, { threads: 1 })
      const { bytes: _b, ...snapshot } = encodeSnapshotBlob(fresh.snapshot())
      fresh.release()
      const split = { train: 0.6, validation: 0.2, test: 0.2 }
      const good = {
        format: JOB_FORMAT, protocol: PROTOCOL, kanaNative: KANA_VERSION, key: 'search/1', config, threads: 1, untilEpoch: 1,
        data: { ...data, split, seed: 7, fingerprint: dataFingerprint(await loadInputs({ ...data, split, seed: 7 })) }, snapshot,
      }
      await lab.startRedis()
      await lab.worker()
      q = new Queue(QUEUE_NAME, { connection: parseQueueUrl(lab.url).options, prefix: QUEUE_PREFIX })
      q.on('error', () => {})
      const cases: [string, unknown, RegExp][] = [
        ['not an object', 'rm -rf /', /not a JSON object/],
        ['another format', { format: 'x' }, /is not a kana-native-trial-job/],
        ['another version', { ...good, kanaNative: '0.0.1' }, /made by kana-native 0\.0\.1 .*this is kana-native/],
        ['an unknown key', { ...good, extra: 1 }, /malformed/],
        ['code in a field', { ...good, key: 'require("child_process")' }, /malformed: key/],
        ['a huge network', { ...good, config: { ...config, hidden: [1_000_000, 1_000_000] } }, /larger than a job may carry/],
        ['a snapshot not matching its hash', { ...good, snapshot: { ...snapshot, sha256: 'f'.repeat(64) } }, /does not match its SHA-256/],
        ['a snapshot of another network', { ...good, config: { ...config, hidden: [9] } }, /do not fit layers/],
        ['an epoch beyond the trial', { ...good, untilEpoch: 3 }, /asks for epoch 3 of a trial of 2 epochs/],
        ['data of another fingerprint', { ...good, data: { ...good.data, fingerprint: '0'.repeat(64) } }, /are not those of the coordinator/],
        ['missing data', { ...good, data: { ...good.data, images: join(lab.dir, 'nope.npy') } }, /cannot load the job's data/],
      ]
      const queue = q
      for (const [i, [name, payload, re]] of cases.entries()) {
        const job = await queue.add('trial', payload, { jobId: `bad-${i}`, attempts: 1 })
        let state = ''
        for (let k = 0; k < 200 && state !== 'failed' && state !== 'completed'; k++) {
          await new Promise((r) => setTimeout(r, 50))
          state = await queue.getJobState(job.id!)
        }
        t.is(state, 'failed', name)
        const failed = await queue.getJob(job.id!)
        t.regex(failed!.failedReason, re, name)
      }
      // and the well-formed job is trained
      const ok = await queue.add('trial', good, { jobId: 'good', attempts: 1 })
      let state = ''
      for (let k = 0; k < 400 && state !== 'failed' && state !== 'completed'; k++) {
        await new Promise((r) => setTimeout(r, 50))
        state = await queue.getJobState(ok.id!)
      }
      t.is(state, 'completed', (await queue.getJob('good'))?.failedReason)
      t.false(lab.allLogs().includes(PASSWORD))
      t.is(redactSecrets(`x ${lab.url} y`), `x redis://***@127.0.0.1:${lab.port}/0 y`)
    } finally {
      await q?.close().catch(() => {})
      await lab.stop()
    }
  })
}

void readdirSync
void root
