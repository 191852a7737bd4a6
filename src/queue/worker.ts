// `kana-native worker`: takes trial jobs from the queue and trains them with the engine. A job is
// one trial advanced to one epoch (a rung of successive halving, or M0/M4 to their end): the worker
// loads and verifies the data, restores the trial from the job's snapshot, advances it epoch by
// epoch (progress events after each), and returns the new snapshot. Training is a deterministic
// function of the configuration, the data, the state and the threads, so the result is the one a
// local run gets, bit for bit.
//
// Faults: a killed worker's job is taken up again by BullMQ's stalled-job check (after the lock
// expires, --lock-seconds) and continues from the job's snapshot — the one it was sent with, or a
// later one the worker stored into the job between epochs (--snapshot-every). stop() (Ctrl-C)
// stops each running trial between two mini-batches, stores its state into its job, puts the job
// back on the queue for another worker, and leaves.
import { hostname } from 'node:os'
import type { Job } from 'bullmq'
import { parameterCount } from '../engine/mlp'
import { Trial, layersOf } from '../training/trial'
import type { TrialData } from '../training/sources'
import { loadBullmq, parseQueueUrl, QUEUE_NAME, QUEUE_PREFIX, redactSecrets } from './connection'
import { loadJobData } from './data'
import {
  decodeSnapshotBlob, encodeSnapshotBlob, KANA_VERSION, MAX_SNAPSHOT_BYTES, parseJob, PayloadError, PROTOCOL, RESULT_FORMAT,
  type TrialJob, type TrialResult,
} from './payload'

export interface WorkerOptions {
  /** redis://[user:password@]host:port[/db] or rediss://… */
  queue: string
  /** Jobs trained side by side (default 1). */
  concurrency?: number
  /** Engine threads of every job (default: the job's, as the coordinator configured it — what bit-identity is promised for). */
  threads?: number
  /** Cache directory for named data sets (default as `train`'s). */
  cacheDir?: string
  /** Seconds a job's lock lasts without renewal: how soon a killed worker's job is taken up again (default 30). */
  lockSeconds?: number
  /** Store the trial's state into its job after an epoch when this many seconds passed since the last (default 60; 0: every epoch). */
  snapshotEvery?: number
  log?: (line: string) => void
}

export interface TrialWorker {
  name: string
  /** Stops running trials between two mini-batches, puts their jobs back with their state, closes. */
  stop(): Promise<void>
  /** Resolves when the worker has closed. */
  closed: Promise<void>
}

export async function startWorker(o: WorkerOptions): Promise<TrialWorker> {
  const { Worker, UnrecoverableError, WaitingError } = await loadBullmq()
  const conn = parseQueueUrl(o.queue)
  const concurrency = o.concurrency ?? 1
  if (!(Number.isInteger(concurrency) && concurrency >= 1 && concurrency <= 64)) throw new RangeError(`--concurrency must be an integer in 1..64, got ${concurrency}`)
  if (o.threads !== undefined && !(Number.isInteger(o.threads) && o.threads >= 1 && o.threads <= 1024)) throw new RangeError(`--threads must be a positive integer, got ${o.threads}`)
  const lockSeconds = o.lockSeconds ?? 30
  if (!(lockSeconds >= 1 && lockSeconds <= 3600)) throw new RangeError(`--lock-seconds must be in 1..3600, got ${lockSeconds}`)
  const snapshotEvery = o.snapshotEvery ?? 60
  if (!(snapshotEvery >= 0)) throw new RangeError(`--snapshot-every must be ≥ 0 seconds, got ${snapshotEvery}`)
  const log = (line: string) => o.log?.(redactSecrets(line))
  const name = `${hostname()}:${process.pid}`
  const stopping = new AbortController()

  // the data of recent jobs, by what names them (two at most: one experiment's data, and a change)
  const cache = new Map<string, Promise<TrialData>>()
  const dataFor = (spec: TrialJob['data']): Promise<TrialData> => {
    const k = JSON.stringify(spec)
    let p = cache.get(k)
    if (!p) {
      p = loadJobData(spec, o.cacheDir)
      p.catch(() => cache.delete(k))
      cache.set(k, p)
      while (cache.size > 2) cache.delete(cache.keys().next().value!)
    }
    return p
  }

  const processor = async (job: Job, token?: string): Promise<TrialResult> => {
    let j: TrialJob
    let trial: Trial | undefined
    try {
      j = parseJob(job.data)
      const data = await dataFor(j.data)
      const layers = layersOf(j.config, data.features, data.classes)
      if (parameterCount(layers) * 4 > MAX_SNAPSHOT_BYTES) throw new PayloadError(`the job's network [${layers}] is larger than a job may carry`)
      if (j.untilEpoch > j.config.epochs) throw new PayloadError(`the job asks for epoch ${j.untilEpoch} of a trial of ${j.config.epochs} epochs`)
      const snapshot = decodeSnapshotBlob(j.snapshot, layers, `job ${job.id}`)
      trial = new Trial(j.config, data, { threads: o.threads ?? j.threads })
      try {
        trial.restore(snapshot)
      } catch (e) {
        throw new PayloadError(`job ${job.id}: the snapshot does not fit its configuration: ${(e as Error).message}`)
      }
    } catch (e) {
      trial?.release()
      // nothing another attempt could change: fail the job with the reason
      if (e instanceof PayloadError || e instanceof RangeError) throw new UnrecoverableError(redactSecrets((e as Error).message))
      throw e
    }
    const t = trial
    try {
      log(`job ${job.id}: trial ${j.key} from epoch ${t.epochsRun}${t.position.partial ? ` (batch ${t.position.partial.nextBatch + 1})` : ''} to ${j.untilEpoch}`)
      let lastSnapshot = performance.now()
      // epoch by epoch (the same run as one advance: see run.ts), so that a state between epochs can be stored
      while (!t.done && t.epochsRun < j.untilEpoch) {
        await t.advance(t.epochsRun + 1, stopping.signal)
        const r = t.history[t.history.length - 1]
        await job.updateProgress({ epoch: r.epoch, untilEpoch: j.untilEpoch, trainLoss: r.trainLoss, valLoss: r.valLoss, valAccuracy: r.valAccuracy, seconds: r.seconds })
        log(`job ${job.id}: trial ${j.key} epoch ${r.epoch}/${j.untilEpoch}  loss ${r.trainLoss.toFixed(4)}  val_loss ${r.valLoss.toFixed(4)}  val_acc ${r.valAccuracy.toFixed(4)}  ${r.seconds.toFixed(2)}s`)
        if (!t.done && t.epochsRun < j.untilEpoch && performance.now() - lastSnapshot >= snapshotEvery * 1000) {
          const { bytes: _b, ...blob } = encodeSnapshotBlob(t.snapshot())
          await job.updateData({ ...j, snapshot: blob })
          lastSnapshot = performance.now()
        }
      }
      const { bytes: _b, ...blob } = encodeSnapshotBlob(t.snapshot())
      log(`job ${job.id}: trial ${j.key} done at epoch ${t.epochsRun}${t.stopReason ? ` (${t.stopReason})` : ''}`)
      return { format: RESULT_FORMAT, protocol: PROTOCOL, kanaNative: KANA_VERSION, key: j.key, untilEpoch: j.untilEpoch, snapshot: blob, worker: name }
    } catch (e) {
      if ((e as Error)?.name === 'AbortError' && stopping.signal.aborted) {
        // stopped between two mini-batches: the job goes back to the queue with the state reached
        const { bytes: _b, ...blob } = encodeSnapshotBlob(t.snapshot())
        await job.updateData({ ...j, snapshot: blob })
        await job.moveToWait(token)
        log(`job ${job.id}: trial ${j.key} stopped at epoch ${t.epochsRun}${t.position.partial ? `, batch ${t.position.partial.nextBatch + 1}` : ''}; its state is back on the queue`)
        throw new WaitingError()
      }
      throw e
    } finally {
      t.release()
    }
  }

  const lockDuration = Math.round(lockSeconds * 1000)
  const worker = new Worker(QUEUE_NAME, processor, {
    connection: conn.options, prefix: QUEUE_PREFIX, concurrency, name,
    lockDuration, stalledInterval: lockDuration, maxStalledCount: 5,
  })
  worker.on('failed', (job, err) => log(`job ${job?.id}: failed: ${err.message}`))
  worker.on('error', (err) => log(`queue error: ${err.message}`))
  await worker.waitUntilReady()
  log(`worker ${name} (kana-native ${KANA_VERSION}): taking trial jobs from ${conn.display}, ${concurrency} at a time${o.threads ? `, ${o.threads} engine thread(s) each` : ''}`)
  let closed: Promise<void> | undefined
  const closedSignal = new Promise<void>((resolve) => worker.once('closed', () => resolve()))
  return {
    name,
    closed: closedSignal,
    stop() {
      if (!closed) {
        stopping.abort()
        closed = worker.close()
      }
      return closed
    },
  }
}
